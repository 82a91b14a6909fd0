"""The test webhook server's users file: the static users file, plus what a webhook can return.

Every key of the embedded static authentication's users file
(:mod:`conch_container.auth.users_file`) means the same here, read by the
same strict parser; a user may also have::

    users:
      alice:
        passwordHash: "$2b$12$..."
        files:                                # written into the container
          /home/user/.motd: "Welcome, Alice\\n"
          /home/user/.token: {value: "s3cr3t", sensitive: true}
        authorize: false                      # /authz refuses her (default: true)
        config:                               # the configuration server's answer
          docker:
            execution:
              container: {image: "alpine:3.20"}
          security:
            maxSessions: 2

``config`` is a partial gateway configuration in the gateway's own YAML; it
is checked when the file loads (see
:mod:`~conch_container.testing.authconfig.override`) and kept in the JSON
form the configuration server answers with.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import attrs

from conch_container.auth.users_file import (
    StaticUser,
    StaticUsersError,
    parse_user,
    parse_values,
    read_users_text,
    users_section,
)
from conch_container.config import AppConfig, ConfigError
from conch_container.metadata import FileValue
from conch_container.testing.authconfig.override import override_document, validation_base

__all__ = ["ServerUser", "load_server_users", "parse_server_users"]

#: What this file adds to a static user.
SERVER_KEYS = frozenset({"files", "authorize", "config"})


@attrs.frozen
class ServerUser:
    """One user of the test webhook server.

    :ivar static: what the embedded static authentication knows of the user
        (credentials, ``environment``, ``metadata``).
    :ivar files: returned with a successful authentication.
    :ivar authorize: whether ``/authz`` allows the user.
    :ivar config: the configuration server's ``config`` for the user, in its
        JSON form (empty: no override).
    """

    static: StaticUser
    files: Mapping[str, FileValue] = attrs.field(factory=dict)
    authorize: bool = True
    config: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def name(self) -> str:
        return self.static.name


def _files(path: str, key: str, raw: Any) -> dict[str, FileValue]:
    """``files``: absolute container paths to text, in the shape of ``environment``."""
    values = parse_values(path, key, raw)
    for name in values:
        if not name.startswith("/") or posixpath.normpath(name) != name:
            raise StaticUsersError(
                path, f"{key}.{name}", "must be an absolute, normalised path in the container"
            )
    return {
        name: FileValue(entry.value.encode("utf-8"), entry.sensitive)
        for name, entry in values.items()
    }


def _server_user(path: str, name: Any, raw: Any, base: AppConfig) -> ServerUser:
    static = parse_user(path, name, raw, extra_keys=SERVER_KEYS)
    where = f"users.{name}"
    authorize = raw.get("authorize", True)
    if not isinstance(authorize, bool):
        raise StaticUsersError(path, f"{where}.authorize", "must be true or false")
    try:
        config = override_document(raw.get("config"), f"{where}.config", base=base)
    except ConfigError as error:
        raise StaticUsersError(path, error.key_path, error.problem) from None
    return ServerUser(
        static=static,
        files=_files(path, f"{where}.files", raw.get("files")),
        authorize=authorize,
        config=config,
    )


def parse_server_users(
    text: str, path: str = "<users>", *, base: AppConfig | None = None
) -> dict[str, ServerUser]:
    """Parse the test webhook server's users-file YAML text.

    :param base: the gateway configuration ``config`` overrides are checked
        against (see :func:`~conch_container.testing.authconfig.override.validation_base`).
    :raises StaticUsersError: naming ``path`` and the key path of the problem.
    """
    base = validation_base() if base is None else base
    return {
        name: _server_user(path, name, raw, base) for name, raw in users_section(text, path).items()
    }


def load_server_users(path: str, *, base: AppConfig | None = None) -> dict[str, ServerUser]:
    """Read and parse the test webhook server's users file.

    :raises StaticUsersError: when it cannot be read or is invalid.
    """
    return parse_server_users(read_users_text(path), path, base=base)
