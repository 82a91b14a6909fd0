"""Fuzzing the configuration loader with mutated real ContainerSSH files.

The only exception ``load_config``, ``decode``, ``parse_config``,
``merge_config`` and ``validate_config`` may raise is ``ConfigError``, with
a key path (``""`` for the file as a whole) and a problem. A configuration
that loads must also survive ``dump_config``: its dump loads to a
configuration with the same dump.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import yaml
from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import (
    AppConfig,
    ConfigError,
    dump_config,
    load_config,
    merge_config,
    parse_config,
    validate_config,
)
from conch_container.config.loader import decode, read_config_text
from conch_container.shape import MAX_DEPTH
from tests.config.material import ed25519_pem, fixture, write
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import (
    Mutated,
    get_at,
    json_scalars,
    json_values,
    keys_of,
    mutated_text,
    mutated_tree,
    paths,
)

#: The real ContainerSSH files (kept in the config tests' fixtures).
FIXTURES = (
    "config-0.4-full.yaml",
    "config.example.yaml",
    "kubernetes-section-containerssh-209.yaml",
)
#: The host key file the example names; the targets use a key file of their own.
EXAMPLE_HOST_KEY = "/etc/containerssh/ssh_host_rsa_key"
HOST_KEY_FILE = "host_key"

_PEM = ed25519_pem()


def fixture_text(name: str) -> str:
    """A fixture's text, with its host key pointing at the targets' key file."""
    return read_config_text(fixture(name)).replace(EXAMPLE_HOST_KEY, HOST_KEY_FILE)


def base_documents() -> dict[str, Any]:
    """The decoded fixtures, each a whole configuration document."""
    documents = {name: decode(fixture_text(name), "yaml") for name in FIXTURES}
    section = documents.pop("kubernetes-section-containerssh-209.yaml")
    documents["kubernetes-section"] = {
        "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
        "kubernetes": section,
    }
    return documents


BASES = base_documents()
BASE_NAMES = tuple(sorted(BASES))
KNOWN_KEYS = tuple(sorted({key for document in BASES.values() for key in keys_of(document)}))
#: Free-form parts (Docker and Kubernetes API objects) where a mutation mostly
#: leaves the file valid: the targets mutate only there in half their cases,
#: so that both valid and invalid mutated files are certain to be tried.
FREE_FORM = (
    ("docker", "execution", "container", "labels"),
    ("docker", "execution", "container", "env"),
    ("docker", "execution", "container", "exposedports"),
    ("kubernetes", "pod", "metadata"),
    ("kubernetes", "pod", "spec"),
)
FREE_FORM_BASES = ("config-0.4-full.yaml", "kubernetes-section")


@st.composite
def mutated_documents(
    draw: st.DrawFn, *, max_depth: int = 3000, **options: Any
) -> tuple[str, Mutated]:
    """A base's name and a mutated copy: anywhere, or only in its free-form parts."""
    if draw(st.booleans()):
        base = draw(st.sampled_from(BASE_NAMES))
        within: tuple[tuple[Any, ...], ...] = ()
    else:
        base = draw(st.sampled_from(FREE_FORM_BASES))
        within = FREE_FORM
        max_depth = min(max_depth, 100)
    mutated = draw(
        mutated_tree(
            BASES[base],
            KNOWN_KEYS,
            file_keys=FILE_KEYS,
            max_depth=max_depth,
            within=within,
            **options,
        )
    )
    return base, mutated


#: Settings whose value is PEM text or the name of a file holding it.
FILE_KEYS = ("hostkeys", "cacert", "cert", "key", "clientcacert", "privateKey")


def sandbox(test: SynchronousTestCase) -> str:
    """A directory with the files the mutated configurations may name."""
    directory = os.path.abspath(test.mktemp())
    write(directory, HOST_KEY_FILE, _PEM, mode=0o600)
    write(directory, "not-pem.txt", "hello\n")
    write(directory, "empty-file", "")
    with open(os.path.join(directory, "not-utf8.bin"), "wb") as file:
        file.write(b"\xff\xfe\x00-----BEGIN")
    os.mkdir(os.path.join(directory, "a-directory"))
    return directory


def render(data: Any, source_format: str) -> str:
    """The text of a document: block YAML, or JSON (what is not JSON becomes a string)."""
    if source_format == "json":
        return json.dumps(data, default=str, indent=1)
    return yaml.dump(data, Dumper=yaml.SafeDumper, allow_unicode=False, sort_keys=False)


class ConfigCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = sandbox(self)
        self.counter = 0

    def file(self, text: str | bytes, source_format: str) -> str:
        """Write a configuration file (a new name each time: a failure can be read back)."""
        self.counter += 1
        path = os.path.join(self.directory, f"config-{self.counter % 2}.{source_format}")
        with open(path, "wb") as file:
            file.write(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        return path

    def outcome(self, run: Any) -> AppConfig | None:
        """Run a load; note how it ended; only ``ConfigError`` may come out."""
        try:
            config = run()
        except ConfigError as error:
            self.check_error(error)
            if error.key_path:
                note("rejected:key")
            elif error.problem.startswith(("invalid YAML", "invalid JSON")) or (
                "not UTF-8" in error.problem
            ):
                note("rejected:syntax")
            else:
                note("rejected:document")
            return None
        except Exception as error:
            count_known_bug(error)
            return None
        self.assertIsInstance(config, AppConfig)
        note("parsed")
        return config

    def check_error(self, error: ConfigError) -> None:
        """A ConfigError names a key path and a problem, and reads as ``path: problem``."""
        self.assertIsInstance(error.key_path, str)
        self.assertIsInstance(error.problem, str)
        self.assertTrue(error.problem, "a ConfigError without a problem")
        expected = f"{error.key_path}: {error.problem}" if error.key_path else error.problem
        self.assertEqual(str(error), expected)

    def check_dump(self, config: AppConfig) -> None:
        """The dump of a loaded configuration loads, to a configuration with the same dump."""
        try:
            dumped = dump_config(config)
        except Exception as error:
            count_known_bug(error)
            return
        again = parse_config(decode(dumped, "yaml"), base_dir=self.directory)
        self.assertEqual(dump_config(again), dumped)
        note("dumped")


def worth_dumping(mutated: Mutated) -> bool:
    """Whether to check the dump of what ``mutated`` loaded to.

    Not for huge values (the YAML emitter takes seconds over them); not for
    dates, which ``dump_config`` writes as plain scalars the core schema reads
    back as strings (only an explicit ``!!timestamp`` tag makes a date).
    Strings with a lone surrogate are checked: the dump writes U+FFFD for it,
    so it loads to a configuration with the same dump.
    """
    if any(mutation.startswith("huge") for mutation in mutated.mutations):
        return False
    tree = mutated.tree
    return not any(isinstance(get_at(tree, path), datetime.date) for path in paths(tree))


def load_data(data: Any, source_format: str, base_dir: str) -> AppConfig:
    """``parse_config`` then ``validate_config``, the steps of ``load_config`` after decoding."""
    config = parse_config(data, source_format=source_format, base_dir=base_dir)  # type: ignore[arg-type]
    validate_config(config)
    return config


class StructureTests(ConfigCase):
    """Mutated structure: keys dropped and added, values of any type, deep nesting, huge values."""

    @fuzz(mutated_documents(), expect=("parsed", "rejected:key"))
    def test_decoded_data(self, document: tuple[str, Mutated]) -> None:
        """``parse_config`` + ``validate_config`` on mutated documents raise only ConfigError."""
        _, mutated = document
        config = self.outcome(lambda: load_data(mutated.tree, "yaml", self.directory))
        if config is not None and worth_dumping(mutated):
            self.check_dump(config)

    @fuzz(
        mutated_documents(max_depth=150),
        st.sampled_from(["yaml", "json"]),
        expect=("parsed", "rejected:key"),
    )
    def test_files(self, document: tuple[str, Mutated], source_format: str) -> None:
        """``load_config`` on mutated documents written as YAML or JSON raises only ConfigError."""
        _, mutated = document
        path = self.file(render(mutated.tree, source_format), source_format)
        config = self.outcome(lambda: load_config(path, base_dir=self.directory))
        if config is not None and worth_dumping(mutated):
            self.check_dump(config)

    @fuzz(mutated_documents(), st.booleans(), expect=("parsed", "rejected:key"))
    def test_merge(self, document: tuple[str, Mutated], through_json: bool) -> None:
        """A configuration server's answer (JSON) merged over a file: only ConfigError."""
        config = parse_config(BASES["config-0.4-full.yaml"])
        tree = document[1].tree
        if through_json:
            tree = json.loads(json.dumps(tree, default=str)) if _json_safe(tree) else tree

        def merged() -> AppConfig:
            result = merge_config(config, tree)
            validate_config(result)
            return result

        self.outcome(merged)

    @fuzz(json_values, st.data(), expect=("parsed", "rejected:key"))
    def test_json_values_anywhere(self, value: Any, data: st.DataObject) -> None:
        """Any JSON value in place of any part of a real file: only ConfigError."""
        _, mutated = data.draw(
            mutated_documents(max_mutations=2, values=st.just(value), leaves=json_scalars),
            label="document",
        )
        self.outcome(lambda: load_data(mutated.tree, "json", self.directory))


def _json_safe(tree: Any) -> bool:
    """Whether ``json.dumps`` can write the tree (the deepest mutations it cannot)."""
    try:
        json.dumps(tree, default=str)
    except (RecursionError, ValueError):
        return False
    return True


class TextTests(ConfigCase):
    """Mutated text: characters, YAML and JSON syntax, bytes and encodings."""

    @fuzz(
        st.sampled_from(FIXTURES),
        st.sampled_from(["yaml", "json"]),
        st.data(),
        expect=("rejected:key", "rejected:syntax"),
    )
    def test_mutated_text(self, name: str, source_format: str, data: st.DataObject) -> None:
        """``load_config`` on a real file with characters and syntax spliced in: ConfigError."""
        text = fixture_text(name)
        if name.startswith("kubernetes"):
            text = "auth: {password: {method: webhook, webhook: {url: 'http://a:1'}}}\n" + (
                "kubernetes:\n" + "".join(f"  {line}\n" for line in text.splitlines())
            )
        if source_format == "json":
            text = render(decode(text, "yaml"), "json")
        text = data.draw(mutated_text(text), label="text")
        path = self.file(text, source_format)
        self.outcome(lambda: load_config(path, base_dir=self.directory))

    @fuzz(
        st.binary(max_size=2000) | st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]),
        st.sampled_from(["yaml", "json"]),
        st.data(),
        expect=("rejected:syntax",),
    )
    def test_random_bytes(self, noise: bytes, source_format: str, data: st.DataObject) -> None:
        """Random bytes, alone or inside a real file (invalid UTF-8 too): only ConfigError."""
        text = fixture_text("config-0.4-full.yaml").encode("utf-8")
        position = data.draw(st.integers(0, len(text)), label="position")
        content = data.draw(
            st.sampled_from([noise, text[:position] + noise + text[position:]]), label="content"
        )
        path = self.file(content, source_format)
        self.outcome(lambda: load_config(path, base_dir=self.directory))

    @fuzz(st.text(max_size=300), st.sampled_from(["yaml", "json"]), expect=("rejected:syntax",))
    def test_random_text(self, text: str, source_format: str) -> None:
        """``decode`` and ``parse_config`` on random text: only ConfigError."""

        def run() -> AppConfig:
            return parse_config(decode(text, source_format), source_format=source_format)  # type: ignore[arg-type]

        self.outcome(run)


class DeepNestingTests(ConfigCase):
    """Documents nested far deeper than any real file."""

    @fuzz(
        st.integers(1, 5000),
        st.sampled_from(["[", "{"]),
        st.sampled_from(["yaml", "json"]),
        expect=("parsed", "rejected:syntax"),
    )
    @example(depth=3000, opener="[", source_format="json").via("deep JSON")
    def test_nested_text(self, depth: int, opener: str, source_format: str) -> None:
        """A value nested ``depth`` deep in flow syntax, kept as written: only ConfigError.

        It is under a Docker container field the Engine API tables do not know,
        which is passed to the engine as written, whatever its shape.
        """
        inner = (
            "[" * depth + "1" + "]" * depth
            if opener == "["
            else '{"a": ' * depth + "1" + "}" * depth
        )
        if source_format == "json":
            text = (
                '{"docker": {"execution": {"container": {"image": "x", "Futurefield": '
                + inner
                + "}}}}"
            )
        else:
            text = (
                "docker:\n  execution:\n    container:\n      image: x\n      Futurefield: "
                + inner
                + "\n"
            )
        self.outcome(lambda: parse_config(decode(text, source_format), source_format=source_format))  # type: ignore[arg-type]


class RegressionTests(ConfigCase):
    """Minimal inputs of bugs the fuzz targets found: each must be a ConfigError."""

    def assertConfigError(self, run: Any) -> ConfigError:
        with self.assertRaises(ConfigError) as raised:
            run()
        self.check_error(raised.exception)
        return raised.exception

    # Fixed: explicitly tagged scalars and huge integers in YAML.

    def test_tagged_scalars(self) -> None:
        """A scalar that is not what its tag says is a YAML error naming no key."""
        for text in (
            "a: !!bool maybe",
            "a: !!int ssh",
            "a: !!float ssh",
            "a: !!int 0x",
            'a: !!float ""',
            "a: !!timestamp 2001-02-30",
            "a: !!timestamp nope",
            "a: !!set [1]",
            "a: !!map [1]",
        ):
            error = self.assertConfigError(lambda text=text: decode(text, "yaml"))
            self.assertEqual(error.key_path, "")
            self.assertTrue(error.problem.startswith("invalid YAML: "), error.problem)

    def test_huge_yaml_integer(self) -> None:
        """An integer too long for Python to convert is a YAML error."""
        error = self.assertConfigError(lambda: decode("a: 1" + "0" * 5000, "yaml"))
        self.assertTrue(error.problem.startswith("invalid YAML: "), error.problem)

    def test_deep_yaml(self) -> None:
        """A document nested beyond the YAML parser's limit is a syntax error."""
        error = self.assertConfigError(lambda: decode("a: " + "[" * 1500 + "]" * 1500, "yaml"))
        self.assertEqual(error.key_path, "")

    # Fixed: JSON syntax beyond the decoder's limits, deep, huge and recursive
    # documents (refused by the shape check), numbers beyond a float, file
    # names no file can have, and lone surrogates from JSON.

    def test_deep_json(self) -> None:
        """A JSON document nested deeper than the JSON decoder recurses is a syntax error."""
        error = self.assertConfigError(lambda: decode("[" * 100_000, "json"))
        self.assertEqual(error.key_path, "")
        self.assertTrue(error.problem.startswith("invalid JSON: "), error.problem)

    def test_huge_json_integer(self) -> None:
        """A JSON integer too long for Python to convert is a syntax error."""
        error = self.assertConfigError(lambda: decode('{"a": 1' + "0" * 5000 + "}", "json"))
        self.assertEqual(error.key_path, "")
        self.assertTrue(error.problem.startswith("invalid JSON: "), error.problem)

    def test_deep_docker_structure(self) -> None:
        """A Docker structure nested 600 deep (YAML allows 1000) is refused where it is too deep."""
        text = "docker: {execution: {container: {image: x, labels: " + "[" * 600 + "]" * 600 + "}}}"
        error = self.assertConfigError(lambda: parse_config(decode(text, "yaml")))
        self.assertTrue(
            error.key_path.startswith("docker.execution.container.labels"), error.key_path
        )

    def test_file_name_with_nul(self) -> None:
        """A PEM-or-file setting naming a file with a NUL in its name is a ConfigError."""
        error = self.assertConfigError(lambda: parse_config({"ssh": {"hostkeys": ["a\x00b"]}}))
        self.assertEqual(error.key_path, "ssh.hostkeys[0]")

    def test_file_name_not_encodable(self) -> None:
        """A file name the file system cannot encode (a lone surrogate) is a ConfigError."""
        error = self.assertConfigError(
            lambda: parse_config(decode('{"ssh": {"hostkeys": ["a\\ud800"]}}', "json"))
        )
        self.assertEqual(error.key_path, "ssh.hostkeys[0]")
        # Given directly rather than through JSON decoding, the surrogate stays.
        error = self.assertConfigError(lambda: parse_config({"ssh": {"hostkeys": ["a\ud800"]}}))
        self.assertEqual(error.key_path, "ssh.hostkeys[0]")

    def test_number_beyond_float(self) -> None:
        """An integer too large for a float in a number setting is a ConfigError."""
        error = self.assertConfigError(
            lambda: parse_config(
                decode("kubernetes: {connection: {qps: 1" + "0" * 400 + "}}", "yaml")
            )
        )
        self.assertEqual(error.key_path, "kubernetes.connection.qps")

    def test_recursive_alias(self) -> None:
        """A YAML alias inside its own anchor is refused (as Go's YAML decoder refuses it)."""
        error = self.assertConfigError(
            lambda: parse_config(
                decode("docker: {execution: {container: &a {image: x, b: *a}}}", "yaml")
            )
        )
        self.assertEqual(error.key_path, "docker.execution.container.b")

    def test_dump_lone_surrogate(self) -> None:
        """A configuration read from JSON with a lone surrogate in a string dumps to loadable YAML.

        (Or the surrogate is refused when the JSON is read, as Go replaces it.)
        """
        data = decode('{"ssh": {"banner": "\\ud800"}}', "json")
        try:
            config = parse_config(data, source_format="json")
        except ConfigError:
            return
        again = parse_config(decode(dump_config(config), "yaml"))
        self.assertEqual(again.ssh.banner, config.ssh.banner)

    def test_dump_deep_structure(self) -> None:
        """A Docker structure nested to the limit loads and dumps; one level more is refused."""
        # The document, docker, execution and container enclose the field the
        # Engine API tables do not know (kept as written): its lists may fill
        # the levels that remain.
        within = MAX_DEPTH - 4
        config = parse_config(decode(_deep_free_form(within), "yaml"))
        dumped = dump_config(config)
        again = parse_config(decode(dumped, "yaml"))
        self.assertEqual(again.docker.execution.container, config.docker.execution.container)
        self.assertEqual(dump_config(again), dumped)

        beyond = _deep_free_form(within + 1)
        error = self.assertConfigError(lambda: parse_config(decode(beyond, "yaml")))
        self.assertEqual(error.key_path, "docker.execution.container.futurefield" + "[0]" * within)


def _deep_free_form(levels: int) -> str:
    """A configuration whose Docker container has a field of ``levels`` nested lists."""
    return (
        "docker: {execution: {container: {image: x, futurefield: "
        + "[" * levels
        + "]" * levels
        + "}}}"
    )
