"""Fuzzing the conversion of ``docker.execution`` into the engine's create request.

``container``, ``host``, ``network`` and ``platform`` come from the operator's
file (or a configuration server) as free-form mappings. ``build_create_request``
may raise only ``ContainerConfigError`` for them (``InvalidVariable`` for an
environment variable no program can be given), and what it returns must be
a JSON body the engine can be sent. ``parse_go_duration`` (health check
intervals and the like) may raise only ``ValueError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker import apischema
from conch_container.backend.docker.apischema import Field, Kind
from conch_container.backend.docker.containerconfig import (
    ContainerConfigError,
    build_create_request,
    parse_go_duration,
)
from conch_container.config import durations
from conch_container.envnames import InvalidVariable
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import Mutated, json_scalars, json_values, mutated_tree, texts
from tests.fuzz.test_durations import durationish, go_durations

_RIGHT = {
    Kind.STR: texts,
    Kind.BOOL: st.booleans(),
    Kind.INT: st.integers(-(2**64), 2**64),
    Kind.STR_LIST: st.lists(texts, max_size=3),
    Kind.STR_SLICE: texts | st.lists(texts, max_size=3),
    Kind.STR_MAP: st.dictionaries(texts, json_scalars, max_size=3),
    Kind.SET: st.dictionaries(texts, st.sampled_from([None, {}]), max_size=3),
    Kind.DURATION: durationish | go_durations().map(lambda d: d[0]) | st.integers(),
    Kind.ANY: json_values,
}


def for_schema(
    schema: Mapping[str, Field], depth: int = 0, *, strict: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings with keys of ``schema`` (any case) holding mostly the right kind of value.

    ``strict``: only known keys, each with a value of its kind.
    """
    names = sorted(schema)
    known = st.sampled_from(names).flatmap(
        lambda name: st.sampled_from([name, name.upper(), schema[name].api_name])
    )
    return st.dictionaries(
        known if strict else known | texts,
        st.deferred(lambda: st.none() | json_values),
        max_size=4,
    ).flatmap(lambda raw: _fill(raw, schema, depth, strict))


def _fill(
    raw: dict[str, Any], schema: Mapping[str, Field], depth: int, strict: bool
) -> st.SearchStrategy[Any]:
    values: dict[str, st.SearchStrategy[Any]] = {}
    folded: set[str] = set()
    for key in raw:
        field = schema.get(key.lower())
        if field is None:
            values[key] = st.just(raw[key])
        elif strict:
            if field.api_name in folded:
                continue  # the same field twice (``image`` and ``Image``) is an error
            folded.add(field.api_name)
            values[key] = _value(field, depth, strict)
        else:
            values[key] = _value(field, depth, strict) | json_values
    return st.fixed_dictionaries(values)


_STRICT = {
    **_RIGHT,
    Kind.STR_MAP: st.dictionaries(texts, texts, max_size=3),
    Kind.DURATION: go_durations().filter(lambda d: 0 <= d[1] < 2**62).map(lambda d: d[0])
    | st.integers(0, 2**62),
    Kind.ANY: st.none() | texts,
}


def _value(field: Field, depth: int, strict: bool) -> st.SearchStrategy[Any]:
    if field.schema is not None and depth < 3:
        inner = for_schema(field.schema, depth + 1, strict=strict)
        if field.kind is Kind.OBJECT_LIST:
            return st.lists(inner, max_size=2)
        if field.kind is Kind.OBJECT_MAP:
            return st.dictionaries(texts, inner, max_size=2)
        if field.kind is Kind.OBJECT_LIST_MAP:
            return st.dictionaries(texts, st.lists(inner, max_size=2) | st.none(), max_size=2)
        return inner
    if field.schema is not None:
        return st.just({})
    return (_STRICT if strict else _RIGHT).get(field.kind, json_values)


_HOST = {**apischema.HOST_CONFIG, **apischema.RESOURCES}


def _sections(strict: bool) -> st.SearchStrategy[dict[str, Any]]:
    container = for_schema(apischema.CONTAINER_CONFIG, strict=strict).map(
        lambda c: {**{k: v for k, v in c.items() if k.lower() != "image"}, "image": "guest"}
    )
    return st.fixed_dictionaries(
        {
            "container": container if strict else container | st.none(),
            "host": for_schema(_HOST, strict=strict) | st.none(),
            "network": for_schema(apischema.NETWORKING_CONFIG, strict=strict) | st.none(),
            "platform": for_schema(apischema.PLATFORM, strict=strict).map(
                # A variant needs an architecture (documented).
                lambda p: (
                    p
                    if not strict
                    else {
                        **{k: v for k, v in p.items() if k.lower() != "architecture"},
                        "architecture": "amd64",
                    }
                )
            )
            | st.none(),
        }
    )


sections = _sections(strict=False)
valid_sections = _sections(strict=True)
_KEYS = tuple(sorted({*apischema.CONTAINER_CONFIG, *_HOST, *apischema.NETWORKING_CONFIG}))
variables = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True) | texts,
        texts,
    ),
    max_size=3,
)


class CreateRequestTests(SynchronousTestCase):
    @fuzz(valid_sections, expect=("built",))
    def test_valid(self, section: dict[str, Any]) -> None:
        """Mappings with the right kind of value under every key give a request."""
        self.build(section, [])
        self.assertNotIn("rejected", self.last)

    last = ""

    def build(self, section: dict[str, Any], env: list[tuple[str, str]]) -> None:
        self.last = "rejected"
        try:
            request = build_create_request(
                container=section.get("container"),
                host=section.get("host"),
                network=section.get("network"),
                platform=section.get("platform"),
                container_name="",
                idle_command=["/bin/sh"],
                labels={"containerssh_connection_id": "0" * 32},
                env=env,
            )
        except ContainerConfigError as error:
            self.assertTrue(error.path.startswith("docker.execution."), error.path)
            note("rejected")
            return
        except InvalidVariable as error:
            self.assertTrue(str(error))
            note("variable refused")
            return
        except Exception as error:
            count_known_bug(error)
            return
        self.assertEqual(request.body["Cmd"], ["/bin/sh"])
        # Strict JSON, as the engine decodes it: bytes, dates and sets (YAML's
        # !!binary, !!timestamp, !!set) and NaN or infinities are refused above.
        json.dumps(request.body, allow_nan=False)
        self.last = "built"
        note("built")

    @fuzz(sections, variables, expect=("built", "rejected"))
    @example({"container": {"image": "x", "healthcheck": {"interval": "1" * 400 + "s"}}}, [])
    def test_schema_shaped(self, section: dict[str, Any], env: list[tuple[str, str]]) -> None:
        """Mappings shaped like the engine's structs, right and wrong values: documented errors."""
        self.build(section, env)

    @fuzz(
        valid_sections.flatmap(lambda s: mutated_tree(s, _KEYS, max_mutations=2, max_depth=200)),
        expect=("built", "rejected"),
    )
    def test_mutated(self, mutated: Mutated) -> None:
        """The same, with parts dropped, retyped, nested, made huge: only the documented errors."""
        section = mutated.tree
        if not isinstance(section, dict):
            section = {"container": section}
        self.build(section, [])


class GoDurationTests(SynchronousTestCase):
    @fuzz(
        st.text(max_size=30) | durationish | go_durations().map(lambda d: d[0]),
        expect=("parsed", "rejected"),
    )
    @example("1" * 400 + "s")
    def test_any_text(self, text: str) -> None:
        """Any text is nanoseconds in Go's int64 range, or a ValueError."""
        try:
            nanoseconds = parse_go_duration(text)
        except ValueError as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        except Exception as error:
            count_known_bug(error)
            return
        self.assertIsInstance(nanoseconds, int)
        # Go refuses the rest; see RegressionTests.test_out_of_range.
        self.assertTrue(
            durations.MIN_NANOSECONDS <= nanoseconds <= durations.MAX_NANOSECONDS, nanoseconds
        )
        note("parsed")


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found."""

    def test_out_of_range(self) -> None:
        """A duration beyond Go's int64 nanoseconds is refused, as ``time.ParseDuration`` does."""
        self.assertRaises(ValueError, parse_go_duration, "2562048h")

    def test_beyond_float(self) -> None:
        """A duration too long for a float is refused with ValueError, not OverflowError."""
        self.assertRaises(ValueError, parse_go_duration, "1" * 400 + "s")

    def test_healthcheck_interval_beyond_float(self) -> None:
        """Such a duration in the container's health check is a ContainerConfigError."""
        with self.assertRaises(ContainerConfigError) as raised:
            build_create_request(
                container={"image": "x", "healthcheck": {"interval": "1" * 400 + "s"}},
                host=None,
                network=None,
                platform=None,
                container_name="",
                idle_command=["/bin/sh"],
                labels={},
                env=[],
            )
        self.assertEqual(raised.exception.path, "docker.execution.container.healthcheck.interval")

    def test_binary_value_passed_through(self) -> None:
        """A YAML ``!!binary`` value under an unknown key does not end up in the engine's JSON.

        The engine's API takes JSON, which has no bytes: the value is refused
        with an error naming the key, not passed through to fail the request.
        """
        with self.assertRaises(ContainerConfigError) as raised:
            build_create_request(
                container={"image": "x", "unknownkey": b"\x00"},
                host=None,
                network=None,
                platform=None,
                container_name="",
                idle_command=["/bin/sh"],
                labels={},
                env=[],
            )
        self.assertEqual(raised.exception.path, "docker.execution.container.unknownkey")
        self.assertIn("binary", raised.exception.message)
