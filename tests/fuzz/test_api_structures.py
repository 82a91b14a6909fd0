"""Fuzzing the settings that are API structures: Docker's container settings, the pod spec.

``docker.execution.container`` / ``host`` / ``network`` / ``platform`` and
``kubernetes.pod.spec`` / ``metadata`` come from the operator's file (or a
configuration server) and are read against field tables by one engine
(:mod:`conch_container.config.apistruct`). Reading them may raise only
``ConfigError``. What it gives must be JSON the API can be sent, must write
back (``dump-config``) to a file that reads to a configuration with the same
dump, and, for Docker, must make a create request once the section is also
valid as a whole (``InvalidVariable`` for an environment variable no program
can be given is the only other error).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.containerconfig import execution_create_request
from conch_container.config import AppConfig, ConfigError, dump_config, parse_config
from conch_container.config.apitable import Field, Shape, Table, Value
from conch_container.config.docker import validate_docker
from conch_container.config.dockerapi import (
    CONTAINER_CONFIG,
    HOST_CONFIG_FLAT,
    NETWORKING_CONFIG,
    PLATFORM,
)
from conch_container.config.kubernetesapi import OBJECT_META, POD_SPEC
from conch_container.config.loader import decode
from conch_container.envnames import InvalidVariable
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import count_known_bug
from tests.fuzz.strategies import Mutated, json_scalars, json_values, mutated_tree, pick, texts
from tests.fuzz.test_durations import durationish, go_durations

_INT64 = st.integers(-(2**63), 2**63 - 1)
_INT32 = st.integers(-(2**31), 2**31 - 1)
_QUANTITIES = ("2", "500m", "1.5", "128Mi", "1Gi", "1e3", "+3k", ".5", 0, 1, 0.25)
_TIMES = ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+01:00", "")

#: Values of each kind, right and (outside strict mode) near it.
_RIGHT: dict[Value, st.SearchStrategy[Any]] = {
    Value.STR: texts,
    Value.BOOL: st.booleans(),
    Value.INT: st.integers(-(2**64), 2**64),
    Value.INT32: st.integers(-(2**32), 2**32),
    Value.DURATION: durationish | go_durations().map(lambda d: d[0]) | st.integers(),
    Value.QUANTITY: pick(_QUANTITIES) | texts | st.floats(),
    Value.INT_OR_STR: texts | st.integers(-(2**32), 2**32),
    Value.TIME: pick(_TIMES) | texts,
    Value.STR_OR_LIST: texts | st.lists(texts, max_size=3),
    Value.EMPTY: st.sampled_from([None, {}]),
    Value.ANY: json_values,
}
#: Only values of each kind.
_STRICT: dict[Value, st.SearchStrategy[Any]] = {
    **_RIGHT,
    Value.INT: _INT64,
    Value.INT32: _INT32,
    Value.DURATION: go_durations().filter(lambda d: 0 <= d[1] < 2**62).map(lambda d: d[0])
    | st.integers(0, 2**62),
    Value.QUANTITY: pick(_QUANTITIES),
    Value.INT_OR_STR: texts | _INT32,
    Value.TIME: pick(_TIMES),
    Value.ANY: st.none() | texts,
}


def for_table(table: Table, depth: int = 0, *, strict: bool = False) -> st.SearchStrategy[Any]:
    """Mappings with keys of ``table`` (any spelling) holding mostly the right kind of value.

    ``strict``: only known keys, each with a value of its kind.
    """
    spellings = sorted({s for f in table.fields for s in (f.name, f.go_name or f.name)})
    known = pick(spellings).flatmap(lambda name: st.sampled_from([name, name.upper()]))
    return st.dictionaries(
        known if strict else known | texts,
        st.deferred(lambda: st.none() | json_values),
        max_size=4,
    ).flatmap(lambda raw: _fill(raw, table, depth, strict))


def _fill(raw: dict[str, Any], table: Table, depth: int, strict: bool) -> st.SearchStrategy[Any]:
    values: dict[str, st.SearchStrategy[Any]] = {}
    given: set[str] = set()
    for key in raw:
        field = table.find(key)
        if field is None:
            values[key] = st.just(raw[key])
        elif strict:
            if field.name in given:
                continue  # the same field twice (``image`` and ``Image``) is an error
            given.add(field.name)
            values[key] = _value(field, depth, strict)
        else:
            values[key] = _value(field, depth, strict) | json_values
    return st.fixed_dictionaries(values)


def _value(field: Field, depth: int, strict: bool) -> st.SearchStrategy[Any]:
    one: st.SearchStrategy[Any]
    if field.table is not None:
        one = for_table(field.table, depth + 1, strict=strict) if depth < 3 else st.just({})
    else:
        one = (_STRICT if strict else _RIGHT)[field.value]
    if field.shape is Shape.ONE:
        return one
    if field.shape is Shape.LIST:
        return st.lists(one, max_size=2)
    if field.shape is Shape.MAP:
        return st.dictionaries(texts, one if strict else one | json_scalars, max_size=2)
    return st.dictionaries(texts, st.lists(one, max_size=2) | st.none(), max_size=2)


def _docker_sections(strict: bool) -> st.SearchStrategy[dict[str, Any]]:
    container = for_table(CONTAINER_CONFIG, strict=strict).map(
        lambda c: {**{k: v for k, v in c.items() if k.lower() != "image"}, "image": "guest"}
    )
    platform = for_table(PLATFORM, strict=strict)
    if strict:
        # A variant needs an architecture (documented).
        platform = platform.map(
            lambda p: {
                **{k: v for k, v in p.items() if k.lower() != "architecture"},
                "architecture": "amd64",
            }
        )
    return st.fixed_dictionaries(
        {
            "container": container if strict else container | st.none(),
            "host": for_table(HOST_CONFIG_FLAT, strict=strict) | st.none(),
            "network": for_table(NETWORKING_CONFIG, strict=strict) | st.none(),
            "platform": platform | st.none(),
        }
    )


docker_sections = _docker_sections(strict=False)
valid_docker_sections = _docker_sections(strict=True)
pods = st.fixed_dictionaries(
    {"spec": for_table(POD_SPEC) | st.none(), "metadata": for_table(OBJECT_META) | st.none()}
)
valid_pods = st.fixed_dictionaries(
    {"spec": for_table(POD_SPEC, strict=True), "metadata": for_table(OBJECT_META, strict=True)}
)
_DOCKER_KEYS = tuple(
    sorted({f.name.lower() for t in (CONTAINER_CONFIG, HOST_CONFIG_FLAT) for f in t.fields})
)
_POD_KEYS = tuple(sorted({f.name for t in (POD_SPEC, OBJECT_META) for f in t.fields}))
variables = st.lists(
    st.tuples(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True) | texts,
        texts,
    ),
    max_size=3,
)


class StructureCase(SynchronousTestCase):
    last = ""

    def read(self, data: dict[str, Any], prefix: str) -> AppConfig | None:
        """Parse ``data``; only a ConfigError under ``prefix`` may come out; the dump reads back."""
        self.last = "rejected"
        try:
            config = parse_config(data)
        except ConfigError as error:
            self.assertTrue(error.key_path.startswith(prefix), error.key_path)
            note("rejected")
            return None
        except Exception as error:
            count_known_bug(error)
            return None
        # Compared as dumps: a lone surrogate (given directly, not through a
        # decoder) is written as U+FFFD, so only the dump is the same.
        dumped = dump_config(config)
        self.assertEqual(dump_config(parse_config(decode(dumped, "yaml"))), dumped)
        self.last = "read"
        return config


class DockerTests(StructureCase):
    def build(self, section: dict[str, Any], env: list[tuple[str, str]]) -> None:
        config = self.read({"docker": {"execution": section}}, "docker.execution")
        if config is None:
            return
        try:
            # What loading a file with ``backend: docker`` checks besides (an image, say).
            validate_docker(config.docker)
        except ConfigError as error:
            self.assertTrue(error.key_path.startswith("docker.execution"), error.key_path)
            note("rejected")
            return
        try:
            request = execution_create_request(
                config.docker.execution,
                labels={"containerssh_connection_id": "0" * 32},
                env=env,
            )
        except InvalidVariable as error:
            self.assertTrue(str(error))
            note("variable refused")
            return
        except Exception as error:
            count_known_bug(error)
            return
        self.assertEqual(request.body["Cmd"], list(config.docker.execution.idle_command))
        # Strict JSON, as the engine decodes it: bytes, dates and sets (YAML's
        # !!binary, !!timestamp, !!set) and NaN or infinities are refused above.
        json.dumps(request.body, allow_nan=False)
        note("built")

    @fuzz(valid_docker_sections, expect=("built",))
    def test_valid(self, section: dict[str, Any]) -> None:
        """Mappings with the right kind of value under every key give a request."""
        self.build(section, [])
        self.assertNotEqual(self.last, "rejected")

    @fuzz(docker_sections, variables, expect=("built", "rejected"))
    @example({"container": {"image": "x", "healthcheck": {"interval": "1" * 400 + "s"}}}, [])
    def test_table_shaped(self, section: dict[str, Any], env: list[tuple[str, str]]) -> None:
        """Mappings shaped like the engine's structs, right and wrong values: documented errors."""
        self.build(section, env)

    @fuzz(
        valid_docker_sections.flatmap(
            lambda s: mutated_tree(s, _DOCKER_KEYS, max_mutations=2, max_depth=200)
        ),
        expect=("built", "rejected"),
    )
    def test_mutated(self, mutated: Mutated) -> None:
        """The same, with parts dropped, retyped, nested, made huge: only the documented errors."""
        section = mutated.tree
        if not isinstance(section, dict):
            section = {"container": section}
        self.build(section, [])


class KubernetesTests(StructureCase):
    def pod(self, pod: dict[str, Any]) -> None:
        config = self.read({"kubernetes": {"pod": pod}}, "kubernetes.pod")
        if config is not None:
            json.dumps(config.kubernetes.pod.spec, allow_nan=False)
            json.dumps(config.kubernetes.pod.metadata, allow_nan=False)
            note("read")

    @fuzz(valid_pods, expect=("read",))
    def test_valid(self, pod: dict[str, Any]) -> None:
        """Known keys with the right kind of value read."""
        self.pod(pod)
        self.assertNotEqual(self.last, "rejected")

    @fuzz(pods, expect=("read", "rejected"))
    def test_table_shaped(self, pod: dict[str, Any]) -> None:
        """Mappings shaped like the pod's structures, right and wrong values: ConfigError."""
        self.pod(pod)

    @fuzz(
        valid_pods.flatmap(lambda p: mutated_tree(p, _POD_KEYS, max_mutations=2, max_depth=200)),
        expect=("read", "rejected"),
    )
    def test_mutated(self, mutated: Mutated) -> None:
        """The same, with parts dropped, retyped, nested, made huge: only ConfigError."""
        pod = mutated.tree if isinstance(mutated.tree, dict) else {"spec": mutated.tree}
        self.pod(pod)


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found."""

    def refused(self, container: dict[str, Any]) -> ConfigError:
        with self.assertRaises(ConfigError) as raised:
            parse_config({"docker": {"execution": {"container": container}}})
        return raised.exception

    def test_healthcheck_interval_beyond_float(self) -> None:
        """A duration too long for a float in the container's health check is a ConfigError."""
        error = self.refused({"image": "x", "healthcheck": {"interval": "1" * 400 + "s"}})
        self.assertEqual(error.key_path, "docker.execution.container.healthcheck.interval")

    def test_binary_value_passed_through(self) -> None:
        """A YAML ``!!binary`` value under an unknown key does not end up in the engine's JSON.

        The engine's API takes JSON, which has no bytes: the value is refused
        with an error naming the key, not passed through to fail the request.
        """
        error = self.refused({"image": "x", "unknownkey": b"\x00"})
        self.assertEqual(error.key_path, "docker.execution.container.unknownkey")
        self.assertIn("binary", error.problem)

    def test_empty_image(self) -> None:
        """An empty image reads (as Go reads it) and is refused by the Docker section's checks."""
        config = parse_config({"docker": {"execution": {"container": {"image": ""}}}})
        with self.assertRaises(ConfigError) as raised:
            validate_docker(config.docker)
        self.assertEqual(raised.exception.key_path, "docker.execution.container.image")
