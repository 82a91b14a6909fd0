"""A per-user partial configuration in YAML, as a configuration server sends it.

Operators write a user's ``config:`` the way they write the gateway's own
file: Go duration strings (``30s``), Docker structures with ContainerSSH's
lower-cased YAML names (``image``, ``resources: {memory: ...}``). The
configuration server protocol is JSON, where the gateway (like ContainerSSH)
reads durations as integer nanoseconds and Docker structures in the Engine
API's names (``Image``, ``Memory``). :func:`override_document` reads the YAML
with the configuration's own declarations (:mod:`conch_container.config.schema`)
and writes each value the override gives in its JSON form, leaving out every
key the override does not name, so the answer stays partial.

Both forms are checked when the users file loads: the YAML merged over a
gateway configuration and validated whole, exactly as the gateway will, and
the JSON read back in the gateway's JSON rules. A bad override is refused at
start-up, naming the user and the key, not at a user's login.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conch_container.config import AppConfig, ConfigError, apply_override, durations, parse_config
from conch_container.config.kinds import Duration, ListOf, RawMap, Section
from conch_container.config.schema import (
    Context,
    Kind,
    describe,
    fail,
    fields_of,
    join,
    unknown_key_problem,
)

__all__ = ["override_document", "validation_base"]


def validation_base() -> AppConfig:
    """The gateway configuration overrides are checked against.

    The defaults, with authentication pointed at a webhook (a configuration
    with no authentication method is refused whatever the override says). An
    override that passes on this base passes on any valid gateway
    configuration unless it conflicts with a setting of that configuration.
    """
    return parse_config(
        {"auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1/"}}}}
    )


def override_document(raw: object, path: str = "", *, base: AppConfig | None = None) -> Any:
    """The configuration server's ``config`` for the partial YAML configuration ``raw``.

    :param path: the key path of ``raw`` in its file, for error messages.
    :param base: the gateway configuration to check the override against
        (:func:`validation_base` by default).
    :raises ConfigError: naming the key path (under ``path``) of the first
        problem, including a merged configuration the gateway would refuse.
    """
    base = validation_base() if base is None else base
    try:
        apply_override(base, raw, source_format="yaml")
        document = _section_json(AppConfig, raw, Context(source_format="yaml"), "")
        # What the gateway will do with the answer: refuse it here, not at login.
        apply_override(base, document, source_format="json")
    except ConfigError as error:
        where = join(path, error.key_path) if error.key_path else path
        raise ConfigError(where, error.problem) from None
    return document


def _section_json(cls: type, raw: object, ctx: Context, path: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        fail(path, f"must be a mapping, not {describe(raw)}")
    by_key = {decl.key: decl for _, decl in fields_of(cls)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        decl = by_key.get(key) if isinstance(key, str) else None
        if decl is None:
            fail(join(path, str(key)), unknown_key_problem(str(key), list(by_key)))
        if value is None:
            continue  # null keeps the gateway's value; saying nothing does the same
        where = join(path, key)
        if isinstance(decl.kind, Section):
            out[key] = _section_json(decl.kind.cls, value, ctx, where)
        else:
            out[key] = _value_json(decl.kind, decl.kind.convert(value, ctx, where))
    return out


def _value_json(kind: Kind, value: Any) -> Any:
    """A read configuration value as Go's JSON decoder expects it."""
    if isinstance(kind, Duration):
        return durations.to_nanoseconds(value)
    if isinstance(kind, ListOf):
        return [_value_json(kind.item_kind, entry) for entry in value]
    if isinstance(kind, RawMap):
        # API structures are held in their API's JSON already (apistruct).
        return value
    # Every other kind writes the same value in YAML and in JSON.
    return kind.dump(value)
