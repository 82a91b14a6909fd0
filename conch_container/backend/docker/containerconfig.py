"""From ``docker.execution`` to the exact ``POST /containers/create`` request.

Pure functions, no I/O: the connection-mode container is described by the
operator's ``container``/``host``/``network``/``platform`` mappings (see
:mod:`conch_container.backend.docker.apischema` for the accepted names), with
``Cmd`` replaced by ``idleCommand``, the connection's labels added and the
authentication environment appended to ``Env``.

Keys the tables do not know are passed through unchanged (the engine matches
names case-insensitively and ignores what it does not know, as ContainerSSH's
Go decoder did); they are reported in :attr:`CreateRequest.unknown_keys` so the
caller can warn about likely typos. A value of the wrong type is a
:class:`ContainerConfigError` naming the offending path; so is a passed-through
value JSON cannot carry (YAML's ``!!binary``, ``!!timestamp`` and ``!!set``,
``.nan`` and ``.inf``), since the engine's API takes JSON.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from conch_container.backend.docker import apischema
from conch_container.backend.docker.apischema import Field, Kind
from conch_container.config import durations
from conch_container.envnames import check_variables

if TYPE_CHECKING:
    from conch_container.config import DockerExecutionConfig

#: The labels ContainerSSH puts on every container (reference section 6.1).
LABEL_CONNECTION_ID = "containerssh_connection_id"
LABEL_IP = "containerssh_ip"
LABEL_USERNAME = "containerssh_username"
#: Our own label: which gateway instance owns the container, for clean-up.
LABEL_INSTANCE = "conch_container_instance"
#: Our own label: a token unique to one create call, to find its container
#: when the call timed out but the engine may have created it all the same.
LABEL_CREATE = "conch_container_create"


class ContainerConfigError(ValueError):
    """A value in the Docker configuration has the wrong shape.

    :ivar path: where, e.g. ``docker.execution.host.restartpolicy.name``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@attrs.frozen
class CreateRequest:
    """Everything ``POST /containers/create`` needs.

    :ivar body: the JSON body, ``HostConfig`` and ``NetworkingConfig`` included.
    :ivar name: the ``name`` query parameter, or ``None`` for a generated name.
    :ivar platform: the ``platform`` query parameter (``os/arch[/variant]``) or ``None``.
    :ivar image: the image reference, as configured.
    :ivar unknown_keys: paths of keys that were passed through unrecognised.
    """

    body: dict[str, Any]
    name: str | None
    platform: str | None
    image: str
    unknown_keys: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Go durations


def parse_go_duration(text: str) -> int:
    """Parse a Go ``time.Duration`` string (``1h30m``, ``1.5s``, ``-20ms``) into nanoseconds.

    The configuration's own duration parser is used: it reproduces
    ``time.ParseDuration`` on exact integer nanoseconds, so a duration Go
    refuses as beyond its int64 range (about 292 years) is refused here too,
    however many digits it has, instead of overflowing a float.

    :raises ValueError: for anything ``time.ParseDuration`` would reject.
    """
    return durations.parse_duration(text)


# ---------------------------------------------------------------------------
# Conversion driven by the schema tables


class _Converter:
    """Walks a mapping against a schema table, collecting unknown keys."""

    def __init__(self) -> None:
        self.unknown: list[str] = []

    def struct(self, raw: object, schema: Mapping[str, Field], path: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise ContainerConfigError(path, f"expected a mapping, got {_type_name(raw)}")
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                raise ContainerConfigError(path, f"key {key!r} is not a string")
            sub = f"{path}.{key}"
            field = schema.get(key.lower())
            if field is None:
                self.unknown.append(sub)
                name, converted = key, _json_copy(value, sub)
            elif value is None:
                # A null leaves the Go field at its zero value: omit it.
                continue
            else:
                name, converted = field.api_name, self.value(value, field, sub)
            if name in origin:
                raise ContainerConfigError(sub, f"duplicates {origin[name]!r}")
            origin[name] = key
            out[name] = converted
        return out

    def value(self, raw: object, field: Field, path: str) -> Any:
        kind = field.kind
        if kind is Kind.STR:
            return _string(raw, path)
        if kind is Kind.BOOL:
            if not isinstance(raw, bool):
                raise ContainerConfigError(path, f"expected a boolean, got {_type_name(raw)}")
            return raw
        if kind is Kind.INT:
            return _integer(raw, path)
        if kind is Kind.STR_LIST:
            return [_string(item, f"{path}[{i}]") for i, item in enumerate(_list(raw, path))]
        if kind is Kind.STR_SLICE:
            if isinstance(raw, str):
                return [raw]
            return [_string(item, f"{path}[{i}]") for i, item in enumerate(_list(raw, path))]
        if kind is Kind.STR_MAP:
            return {k: _map_string(v, f"{path}.{k}") for k, v in _mapping(raw, path).items()}
        if kind is Kind.SET:
            out: dict[str, dict[str, Any]] = {}
            for k, v in _mapping(raw, path).items():
                if v not in (None, {}):
                    raise ContainerConfigError(f"{path}.{k}", "expected an empty value")
                out[k] = {}
            return out
        if kind is Kind.DURATION:
            return _duration(raw, path)
        assert field.schema is not None or kind is Kind.ANY
        if kind is Kind.OBJECT:
            assert field.schema is not None
            return self.struct(raw, field.schema, path)
        if kind is Kind.OBJECT_LIST:
            assert field.schema is not None
            schema = field.schema
            return [
                self.struct(item, schema, f"{path}[{i}]") for i, item in enumerate(_list(raw, path))
            ]
        if kind is Kind.OBJECT_MAP:
            assert field.schema is not None
            schema = field.schema
            return {
                k: self.struct(v, schema, f"{path}.{k}") for k, v in _mapping(raw, path).items()
            }
        if kind is Kind.OBJECT_LIST_MAP:
            assert field.schema is not None
            schema = field.schema
            return {
                k: [
                    self.struct(item, schema, f"{path}.{k}[{i}]")
                    for i, item in enumerate(_list(v, f"{path}.{k}") if v is not None else [])
                ]
                for k, v in _mapping(raw, path).items()
            }
        return _json_copy(raw, path)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _string(raw: object, path: str) -> str:
    # Go's YAML decoder accepts any scalar for a string field; a boolean there is
    # almost certainly a mistake (``hostname: yes``), so it is refused.
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise ContainerConfigError(path, f"expected a string, got {_type_name(raw)}")


def _map_string(raw: object, path: str) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return ""
    return _string(raw, path)


def _integer(raw: object, path: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    raise ContainerConfigError(path, f"expected an integer, got {_type_name(raw)}")


def _duration(raw: object, path: str) -> int:
    """Nanoseconds from a Go duration string or a number of nanoseconds."""
    if isinstance(raw, str):
        try:
            return parse_go_duration(raw)
        except ValueError as e:
            raise ContainerConfigError(path, str(e)) from None
    nanoseconds = _integer(raw, path)
    # The engine decodes the number into Go's int64; beyond it, it would
    # refuse the whole request with a JSON error that names no setting.
    if not durations.MIN_NANOSECONDS <= nanoseconds <= durations.MAX_NANOSECONDS:
        raise ContainerConfigError(
            path,
            f"a duration in nanoseconds must be between {durations.MIN_NANOSECONDS} and "
            f"{durations.MAX_NANOSECONDS} (about 292 years)",
        )
    return nanoseconds


#: What YAML can give that JSON cannot carry, and what the operator can write instead.
_NOT_JSON: tuple[tuple[type | tuple[type, ...], str, str], ...] = (
    (bytes, "binary data (!!binary)", "a string"),
    (datetime.date, "a date or time (!!timestamp)", "a quoted string"),
    ((set, frozenset), "a set (!!set)", "a list or a mapping"),
)


def _json_copy(raw: object, path: str, ancestors: frozenset[int] = frozenset()) -> Any:
    """A copy of ``raw`` made of JSON values only, for a value passed through to the engine.

    The engine's API takes JSON: a value ``json.dumps`` refuses (bytes, dates,
    sets) would fail the request far from the setting, and ``NaN`` or
    ``Infinity`` would be sent as text the engine's decoder refuses.

    :param ancestors: ids of the lists and mappings ``raw`` is inside, to
        refuse a YAML alias to its own anchor instead of recursing forever.
    """
    if raw is None or isinstance(raw, bool | int | str):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ContainerConfigError(
                path, f"{raw!r} cannot be sent to the engine: JSON has no NaN or infinity"
            )
        return raw
    if not isinstance(raw, Mapping | list | tuple):
        raise ContainerConfigError(path, _not_json(raw))
    if id(raw) in ancestors:
        raise ContainerConfigError(
            path, "the value contains itself (a YAML alias inside its anchor)"
        )
    inside = ancestors | {id(raw)}
    if isinstance(raw, Mapping):
        return {k: _json_copy(v, f"{path}.{k}", inside) for k, v in _mapping(raw, path).items()}
    return [_json_copy(item, f"{path}[{i}]", inside) for i, item in enumerate(raw)]


def _not_json(raw: object) -> str:
    what, instead = f"a {type(raw).__name__} value", "a string"
    for types, known, replacement in _NOT_JSON:
        if isinstance(raw, types):
            what, instead = known, replacement
            break
    return f"{what} cannot be sent to the engine, whose API takes JSON; write {instead} instead"


def _list(raw: object, path: str) -> list[Any]:
    if isinstance(raw, list | tuple):
        return list(raw)
    raise ContainerConfigError(path, f"expected a list, got {_type_name(raw)}")


def _mapping(raw: object, path: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ContainerConfigError(path, f"expected a mapping, got {_type_name(raw)}")
    for key in raw:
        if not isinstance(key, str):
            raise ContainerConfigError(path, f"key {key!r} is not a string")
    return dict(raw)


# ---------------------------------------------------------------------------
# The public conversions

_HOST_WITH_RESOURCES = {**apischema.HOST_CONFIG, **apischema.RESOURCES}


def convert_container_config(
    raw: Mapping[str, Any] | None, path: str = "container"
) -> tuple[dict[str, Any], list[str]]:
    """``container.Config`` in either spelling to Engine API JSON, plus unknown key paths."""
    converter = _Converter()
    return converter.struct(raw or {}, apischema.CONTAINER_CONFIG, path), converter.unknown


def convert_host_config(
    raw: Mapping[str, Any] | None, path: str = "host"
) -> tuple[dict[str, Any], list[str]]:
    """``container.HostConfig`` to Engine API JSON, flattening a nested ``resources`` mapping."""
    converter = _Converter()
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        raise ContainerConfigError(path, f"expected a mapping, got {_type_name(raw)}")
    nested: object = None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.lower() == apischema.RESOURCES_KEY:
            nested = value
        else:
            flat[key] = value
    out = converter.struct(flat, _HOST_WITH_RESOURCES, path)
    if nested is not None:
        resources = converter.struct(nested, apischema.RESOURCES, f"{path}.resources")
        for name, value in resources.items():
            if name in out:
                raise ContainerConfigError(
                    f"{path}.resources.{name}", "also given outside resources"
                )
            out[name] = value
    return out, converter.unknown


def convert_networking_config(
    raw: Mapping[str, Any] | None, path: str = "network"
) -> tuple[dict[str, Any], list[str]]:
    """``network.NetworkingConfig`` to Engine API JSON."""
    converter = _Converter()
    return converter.struct(raw or {}, apischema.NETWORKING_CONFIG, path), converter.unknown


def platform_parameter(raw: Mapping[str, Any] | None, path: str = "platform") -> str | None:
    """The ``platform`` query parameter (``os/arch[/variant]``) for an OCI platform, or None.

    The OS defaults to ``linux`` when only an architecture is given.
    """
    if not raw:
        return None
    converter = _Converter()
    platform = converter.struct(raw, apischema.PLATFORM, path)
    os_name = platform.get("os") or "linux"
    parts = [os_name]
    if platform.get("architecture"):
        parts.append(platform["architecture"])
        if platform.get("variant"):
            parts.append(platform["variant"])
    elif platform.get("variant"):
        raise ContainerConfigError(f"{path}.variant", "a variant needs an architecture")
    return "/".join(parts)


def merge_env(base: Iterable[str], extra: Iterable[tuple[str, str]]) -> list[str]:
    """``base`` (``NAME=value`` strings) with ``extra`` added; a later name replaces an earlier one.

    Docker keeps duplicate names and the C library then finds the first, so the
    list is de-duplicated here, keeping the first position of each name.

    ``base`` is the operator's configured ``Env``; every variable in ``extra``
    has been checked where it arrived, and is checked once more here, where it
    becomes the string the engine splits at its first ``=``: a name with an
    ``=`` in it must never get that far.

    :raises ~conch_container.envnames.InvalidVariable: for a variable in
        ``extra`` no program can be given.
    """
    added = list(extra)
    check_variables(added)
    merged: dict[str, str] = {}
    for entry in base:
        merged[entry.partition("=")[0]] = entry
    for name, value in added:
        merged[name] = f"{name}={value}"
    return list(merged.values())


def execution_create_request(
    execution: DockerExecutionConfig,
    *,
    labels: Mapping[str, str],
    env: Iterable[tuple[str, str]],
) -> CreateRequest:
    """:func:`build_create_request` for a ``docker.execution`` config section.

    :raises ContainerConfigError: for a malformed value or a missing image.
    :raises ~conch_container.envnames.InvalidVariable: for a variable in ``env``
        no program can be given.
    """
    return build_create_request(
        container=execution.container,
        host=execution.host,
        network=execution.network,
        platform=execution.platform,
        container_name=execution.containername,
        idle_command=execution.idle_command,
        labels=labels,
        env=env,
    )


def build_create_request(
    *,
    container: Mapping[str, Any] | None,
    host: Mapping[str, Any] | None,
    network: Mapping[str, Any] | None,
    platform: Mapping[str, Any] | None,
    container_name: str,
    idle_command: Iterable[str],
    labels: Mapping[str, str],
    env: Iterable[tuple[str, str]],
    path: str = "docker.execution",
) -> CreateRequest:
    """The connection-mode container request.

    :param labels: added to (and overriding) the configured labels.
    :param env: ``(name, value)`` pairs appended to the configured ``Env``.
    :raises ContainerConfigError: for a malformed value or a missing image.
    :raises ~conch_container.envnames.InvalidVariable: for a variable in ``env``
        no program can be given (see :func:`merge_env`).
    """
    body, unknown = convert_container_config(container, f"{path}.container")
    image = body.get("Image")
    if not isinstance(image, str) or not image.strip():
        raise ContainerConfigError(f"{path}.container.image", "an image is required")
    body["Cmd"] = list(idle_command)
    body["Labels"] = {**body.get("Labels", {}), **labels}
    body["Env"] = merge_env(body.get("Env", []), env)

    host_config, host_unknown = convert_host_config(host, f"{path}.host")
    networking, network_unknown = convert_networking_config(network, f"{path}.network")
    if host_config:
        body["HostConfig"] = host_config
    if networking:
        body["NetworkingConfig"] = networking
    return CreateRequest(
        body=body,
        name=container_name or None,
        platform=platform_parameter(platform, f"{path}.platform"),
        image=image,
        unknown_keys=(*unknown, *host_unknown, *network_unknown),
    )
