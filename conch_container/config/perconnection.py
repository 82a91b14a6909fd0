"""One connection's configuration: the static one with a configuration server's answer over it.

Unlike ContainerSSH, every value the server sends takes effect, ``false``,
``0`` and ``""`` included (ContainerSSH's merge skips zero values, so a
server can never switch a setting off); keys it leaves out, or sets to
``null``, keep the static value, and maps merge key by key
(:func:`~conch_container.config.loader.merge_config` with ``explicit``).

Only what the gateway decides per connection may differ from the static
configuration: :data:`VARIABLE_SECTIONS` and ``log.level``. The SSH listener,
host keys, authentication, audit storage, metrics and the rest are fixed for
the whole process, so an answer that changes one of them is refused naming
the key (quietly ignoring it would leave the server's author believing it took
effect). ``backend`` may change: the gateway routes the connection to that
backend (:mod:`conch_container.backend.dispatch`), which refuses it if the
backend is not available. An answer
that repeats a fixed value unchanged (a server that sends a whole
configuration) is fine.
"""

from __future__ import annotations

from typing import Any

import attrs

from conch_container.config.app import AppConfig
from conch_container.config.errors import ConfigError
from conch_container.config.loader import checked_config, merge_config
from conch_container.config.schema import fields_of, join

#: Top-level sections a configuration server may change for one connection.
VARIABLE_SECTIONS = frozenset({"docker", "kubernetes", "sshproxy", "security", "session"})


def connection_config(base: AppConfig, override: object) -> AppConfig:
    """``base`` with a configuration server's ``config`` merged in explicitly, fully checked.

    :raises ConfigError: naming the key path of the first problem: a fixed key
        the override changes, a bad value, or a merged configuration that
        does not validate.
    """
    merged = merge_config(base, override, source_format="json", explicit=True)
    changed = fixed_key_changed(base, merged)
    if changed is not None:
        raise ConfigError(changed, "cannot be changed per connection by a configuration server")
    return checked_config(merged)


def fixed_key_changed(base: AppConfig, merged: AppConfig) -> str | None:
    """The key path of the first setting outside what may vary per connection that differs."""
    for field, declared in fields_of(AppConfig):
        if declared.key in VARIABLE_SECTIONS or declared.key == "backend":
            continue
        before = getattr(base, field.name)
        after = getattr(merged, field.name)
        if declared.key == "log":
            after = attrs.evolve(after, level=before.level)
        changed = _first_difference(before, after, declared.key)
        if changed is not None:
            return changed
    return None


def _first_difference(before: Any, after: Any, path: str) -> str | None:
    if before == after:
        return None
    if attrs.has(type(before)) and type(before) is type(after):
        for field, declared in fields_of(type(before)):
            changed = _first_difference(
                getattr(before, field.name), getattr(after, field.name), join(path, declared.key)
            )
            if changed is not None:
                return changed
    return path
