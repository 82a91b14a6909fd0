"""Raw documents are checked before parsing: depth, size, cycles; JSON's odd corners.

Whatever reaches ``parse_config`` or ``merge_config``, through ``decode`` or
given directly (a configuration server's answer), is refused with a
ConfigError naming where it went wrong if it is nested more than
:data:`~conch_container.shape.MAX_DEPTH` levels, holds more than
:data:`~conch_container.shape.MAX_VALUES` values, or contains itself.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import ConfigError, dump_config, merge_config, parse_config
from conch_container.config.loader import decode
from conch_container.shape import MAX_DEPTH

#: Key path of a Docker container field the Engine API tables do not know: it is
#: passed on as written, a free-form structure three levels below the top.
FREE_FORM = "docker.execution.container.futurefield"


def nested_lists(levels: int) -> Any:
    """``levels`` lists, each the only item of the one around it."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def with_free_form(value: Any) -> dict[str, Any]:
    """A document with ``value`` as a free-form Docker container field."""
    return {"docker": {"execution": {"container": {"image": "x", "futurefield": value}}}}


#: How many lists the free-form field may nest: the document, docker, execution and
#: container enclose them.
FREE_FORM_LEVELS = MAX_DEPTH - 4


class DepthTests(SynchronousTestCase):
    def test_within_limit(self) -> None:
        """Data nested exactly to the limit is parsed and kept as it is."""
        value = nested_lists(FREE_FORM_LEVELS)
        config = parse_config(with_free_form(value))
        self.assertEqual(config.docker.execution.container["futurefield"], value)

    def test_beyond_limit_given_directly(self) -> None:
        """Data given to parse_config without decode is checked too, naming the key."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(with_free_form(nested_lists(FREE_FORM_LEVELS + 1)))
        self.assertEqual(raised.exception.key_path, FREE_FORM + "[0]" * FREE_FORM_LEVELS)
        self.assertEqual(raised.exception.problem, f"nested more than {MAX_DEPTH} levels deep")

    def test_beyond_limit_in_merge(self) -> None:
        """A configuration server's answer nested too deeply is refused by merge_config."""
        base = parse_config(with_free_form({"a": "1"}))
        with self.assertRaises(ConfigError) as raised:
            merge_config(base, with_free_form(nested_lists(FREE_FORM_LEVELS + 1)))
        self.assertTrue(raised.exception.key_path.startswith(FREE_FORM), raised.exception.key_path)

    def test_beyond_limit_in_json(self) -> None:
        """A JSON file nested deeper than the limit, but not than the decoder, names the key."""
        text = (
            '{"docker": {"execution": {"container": {"image": "x", "futurefield": '
            + "[" * 500
            + "]" * 500
            + "}}}}"
        )
        with self.assertRaises(ConfigError) as raised:
            decode(text, "json")
        self.assertTrue(raised.exception.key_path.startswith(FREE_FORM), raised.exception.key_path)


class CycleAndSizeTests(SynchronousTestCase):
    def test_recursive_alias(self) -> None:
        """A YAML mapping holding itself through an alias names the key of the alias."""
        with self.assertRaises(ConfigError) as raised:
            decode("docker: {execution: {container: &a {image: x, futurefield: [*a]}}}", "yaml")
        self.assertEqual(raised.exception.key_path, FREE_FORM + "[0]")
        self.assertIn("contains itself", raised.exception.problem)

    def test_recursive_overlay(self) -> None:
        """An overlay that contains itself is refused by merge_config."""
        overlay = with_free_form({})
        overlay["docker"]["execution"]["container"]["futurefield"]["self"] = overlay
        with self.assertRaises(ConfigError) as raised:
            merge_config(parse_config(None), overlay)
        self.assertEqual(raised.exception.key_path, FREE_FORM + ".self")

    def test_shared_alias_allowed(self) -> None:
        """An anchor used twice without a cycle is fine."""
        data = decode(
            "docker: {execution: {container: {image: x, futurefield: [&a [1], *a]}}}", "yaml"
        )
        config = parse_config(data)
        self.assertEqual(config.docker.execution.container["futurefield"], [[1], [1]])

    def test_alias_bomb(self) -> None:
        """Aliases expanding to a million values ("billion laughs") are refused."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in range(1, 6):
            aliases = ", ".join([f"*a{level - 1}"] * 10)
            lines.append(f"a{level}: &a{level} [{aliases}]")
        with self.assertRaises(ConfigError) as raised:
            decode("\n".join(lines) + "\n", "yaml")
        self.assertIn("more than 200000 values", raised.exception.problem)


class JSONTests(SynchronousTestCase):
    def test_deeper_than_decoder(self) -> None:
        """JSON nested beyond what Python's decoder recurses is a syntax error, no traceback."""
        with self.assertRaises(ConfigError) as raised:
            decode("[" * 100_000, "json")
        self.assertEqual(str(raised.exception), "invalid JSON: the document is nested too deeply")

    def test_integer_too_long(self) -> None:
        """An integer of more digits than Python converts says so."""
        with self.assertRaises(ConfigError) as raised:
            decode('{"a": 1' + "0" * 5000 + "}", "json")
        self.assertEqual(raised.exception.key_path, "")
        self.assertRegex(
            raised.exception.problem, r"^invalid JSON: a number has more than \d+ digits$"
        )

    def test_lone_surrogate_replaced(self) -> None:
        """A lone surrogate escape becomes U+FFFD, as in Go; a proper pair stays one character."""
        data = decode('{"a\\ud800": ["\\udc00x", "\\ud83d\\ude00"]}', "json")
        self.assertEqual(data, {"a\ufffd": ["\ufffdx", "\U0001f600"]})


class ValueTests(SynchronousTestCase):
    def test_number_beyond_float(self) -> None:
        """An integer no float can hold, in a number setting, names the setting."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"kubernetes": {"connection": {"qps": 10**400}}})
        self.assertEqual(
            str(raised.exception), "kubernetes.connection.qps: the number is too large"
        )

    def test_file_name_with_nul(self) -> None:
        """A file name with a NUL byte is refused, the name shown escaped."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"ssh": {"hostkeys": ["a\x00b"]}})
        self.assertEqual(
            str(raised.exception),
            "ssh.hostkeys[0]: cannot read file 'a\\x00b': no file can have this name",
        )

    def test_file_name_with_lone_surrogate(self) -> None:
        """A file name no file system encoding can hold: refused, and the message prints."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"ssh": {"hostkeys": ["a\ud800"]}})
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")
        str(raised.exception).encode("utf-8")  # no lone surrogate in the message


class DumpTests(SynchronousTestCase):
    def test_lone_surrogate_dumped_as_replacement(self) -> None:
        """A lone surrogate given directly is dumped as U+FFFD, so the dump reads back."""
        config = parse_config({"ssh": {"banner": "hi\ud800"}, **with_free_form({"k\udc00": "v"})})
        again = parse_config(decode(dump_config(config), "yaml"))
        self.assertEqual(again.ssh.banner, "hi\ufffd")
        self.assertEqual(again.docker.execution.container["futurefield"], {"k\ufffd": "v"})
