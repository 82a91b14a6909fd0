"""Settings that are another program's API structures: the one engine that reads them.

Some settings are not ContainerSSH's own: ``docker.execution.container``,
``host``, ``network`` and ``platform`` are Docker Engine API structures, and
``kubernetes.pod.metadata`` and ``pod.spec`` are Kubernetes objects. Each is
described by a table (:mod:`~conch_container.config.apitable`): per field its
name in the API's JSON, the kind of value it holds and, for a nested
structure, that structure's table (the Docker tables are in
:mod:`~conch_container.config.dockerapi`, the generated Kubernetes ones in
:mod:`~conch_container.config.kubernetesapi`).

One engine reads them all, :class:`ApiStruct`, a config kind like any other,
so the structures are checked when the file is loaded, once, with the rest:

- a value of the wrong type is a :class:`~conch_container.config.ConfigError`
  naming its key path, however deep it is;
- field names match in any letter case, as Go's JSON decoder matches them,
  and the configuration holds the value converted to the API's JSON: the API's
  spelling of every known name, durations in integer nanoseconds, a string
  given for a list as a list of one. What the configuration holds can be
  sent as it is;
- a key its table does not know is refused (Kubernetes objects, which
  ContainerSSH decodes strictly) or passed on as written and warned about
  (Docker's, which the engine tolerates), as the table says;
- ``null`` leaves a field out, as decoding ``null`` leaves a Go field at its
  zero value.

Written back (``dump-config``), a structure takes the spelling ContainerSSH
writes in YAML again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from conch_container.config import durations
from conch_container.config.apitable import Field, PassUnknown, Shape, Table, Value
from conch_container.config.apivalues import READERS, json_copy, list_of, mapping
from conch_container.config.kinds import RawMap
from conch_container.config.schema import (
    Check,
    Context,
    fail,
    item,
    join,
    unknown_key_problem,
)

# ---------------------------------------------------------------------------
# Reading


class Reader:
    """Reads raw values against tables; collects the unknown keys it passed on.

    :ivar passed_on: ``(key path, policy)`` of every unknown key passed on.
    """

    def __init__(self) -> None:
        self.passed_on: list[tuple[str, PassUnknown]] = []

    def struct(self, raw: object, table: Table, path: str) -> dict[str, Any]:
        """The API JSON of the structure ``raw`` found at ``path``."""
        out: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in mapping(raw, path).items():
            where = join(path, key)
            field = table.find(key)
            if field is None:
                if table.unknown is None:
                    fail(where, unknown_key_problem(key, [f.name for f in table.fields]))
                self.passed_on.append((where, table.unknown))
                name, converted = key, json_copy(value, where)
            elif value is None:
                continue  # Go leaves the field at its zero value: it is omitted
            else:
                name, converted = field.name, self.field(value, field, where)
            if name in given_as:
                fail(where, f'is the same field as "{given_as[name]}"')
            given_as[name] = key
            out[name] = converted
        return out

    def field(self, raw: object, field: Field, path: str) -> Any:
        """The API JSON of a non-null value of ``field``."""
        shape = field.shape
        if shape is Shape.ONE:
            return self.one(raw, field, path)
        if shape is Shape.LIST:
            return [
                self.one(entry, field, item(path, i)) for i, entry in enumerate(list_of(raw, path))
            ]
        if shape is Shape.MAP:
            return {
                key: self.entry(entry, field, join(path, key))
                for key, entry in mapping(raw, path).items()
            }
        return {
            key: [
                self.one(entry, field, item(join(path, key), i))
                for i, entry in enumerate(
                    list_of(entries, join(path, key)) if entries is not None else []
                )
            ]
            for key, entries in mapping(raw, path).items()
        }

    def entry(self, raw: object, field: Field, path: str) -> Any:
        """A mapping's entry: there a boolean or ``null`` is also taken as a string.

        (Decoding into a Go ``map[string]string`` turns YAML's ``true`` into
        ``"true"`` and ``null`` into ``""``.)
        """
        if field.value is Value.STR:
            if isinstance(raw, bool):
                return "true" if raw else "false"
            if raw is None:
                return ""
        return self.one(raw, field, path)

    def one(self, raw: object, field: Field, path: str) -> Any:
        """One value of ``field``."""
        kind = field.value
        if kind is Value.OBJECT:
            assert field.table is not None
            return self.struct(raw, field.table, path)
        if kind is Value.ANY:
            return json_copy(raw, path)
        return READERS[kind](raw, path)


# ---------------------------------------------------------------------------
# Writing back


def dump_struct(value: Mapping[str, Any], table: Table) -> dict[str, Any]:
    """API JSON held by the configuration, spelled as ContainerSSH writes it in YAML."""
    out: dict[str, Any] = {}
    for name, entry in value.items():
        field = table.by_name.get(name)
        if field is None:
            out[name] = copy.deepcopy(entry)  # passed on as written
        else:
            out[table.yaml_key(field)] = _dump_field(entry, field)
    return out


def _dump_field(value: Any, field: Field) -> Any:
    shape = field.shape
    if shape is Shape.ONE:
        return _dump_one(value, field)
    if shape is Shape.LIST:
        return [_dump_one(entry, field) for entry in value]
    if shape is Shape.MAP:
        return {key: _dump_one(entry, field) for key, entry in value.items()}
    return {key: [_dump_one(entry, field) for entry in entries] for key, entries in value.items()}


def _dump_one(value: Any, field: Field) -> Any:
    if field.value is Value.OBJECT:
        assert field.table is not None
        return dump_struct(value, field.table)
    if field.value is Value.DURATION:
        return durations.format_duration(value)
    return copy.deepcopy(value)


# ---------------------------------------------------------------------------
# The config kind


class ApiStruct(RawMap):
    """A setting that is an API structure, read against its table.

    Defaults, ``overlay`` and merging are :class:`~conch_container.config.kinds.RawMap`'s;
    the value is the API JSON (see the module documentation). Each unknown key
    passed on is warned about under its table's code, once, where it is read.
    """

    def __init__(self, table: Table, *checks: Check, overlay: bool = False) -> None:
        super().__init__(*checks, overlay=overlay)
        self.table = table
        self.type_name = table.title

    def convert(self, raw: object, ctx: Context, path: str) -> dict[str, Any]:
        reader = Reader()
        value = self.read(reader, raw, path)
        for where, policy in reader.passed_on:
            ctx.warn(policy.code, where, policy.message)
        return value

    def read(self, reader: Reader, raw: object, path: str) -> dict[str, Any]:
        """The API JSON of ``raw``; subclasses read structures with a shape of their own."""
        return reader.struct(raw, self.table, path)

    def dump(self, value: Any) -> Any:
        return None if value is None else dump_struct(value, self.table)
