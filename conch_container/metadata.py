"""What the gateway knows about one connection, as the webhooks see it.

These are ContainerSSH's ``ConnectionMetadata`` objects (reference section 4.2):
the connection id, remote address, client version, login and authenticated
usernames, and the ``metadata``/``environment``/``files`` maps that
authentication (and later the config webhook) add. They are immutable; every
step that learns something returns a new value with :meth:`ConnectionMetadata.merge`.

An ``environment`` map can only hold variables a program can be given (a
portable name, no NUL in the value; see :mod:`conch_container.envnames`):
neither an :class:`AuthResult` nor a :class:`ConnectionMetadata` can be built
with any other, so whatever source an answer came from (a webhook, the users
file, an operator's own authenticator, the configuration webhook), nothing
that could smuggle a variable is merged into a connection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from conch_container import messages
from conch_container.codes import Level
from conch_container.envnames import check_variables, loggable_name, variable_problem
from conch_container.log.logger import CodeLogger


@attrs.frozen
class MetadataValue:
    """A string value with a sensitivity flag (``{"value": ..., "sensitive": ...}``)."""

    value: str
    sensitive: bool = False


@attrs.frozen
class FileValue:
    """File content to place in the container (base64 on the wire, bytes here)."""

    value: bytes
    sensitive: bool = False


def new_connection_id() -> str:
    """A fresh connection id: 16 random bytes as 32 lowercase hex characters."""
    return os.urandom(16).hex()


def _frozen_map(value: Mapping | None) -> Mapping:
    return dict(value or {})


def _only_variables(instance: Any, attribute: Any, value: Mapping[str, MetadataValue]) -> None:
    """Validate an ``environment`` map: every entry can be given to a program.

    :raises ~conch_container.envnames.InvalidVariable: (a ``ValueError``) otherwise.
    """
    check_variables((name, entry.value) for name, entry in value.items())


def exposed_metadata(
    metadata: Mapping[str, MetadataValue], log: CodeLogger
) -> list[tuple[str, str]]:
    """The metadata entries that become environment variables (``exposeAuthMetadataAsEnv``).

    Metadata keys are free-form (``team.name`` is a fine key), so an entry that
    cannot be a variable is left out with a ``SECURITY_ENV_REJECTED`` warning
    rather than failing the connection: the key was not chosen as a variable
    name, and the rest of the metadata is sound.
    """
    variables = []
    for name, entry in metadata.items():
        why = variable_problem(name, entry.value)
        if why is None:
            variables.append((name, entry.value))
        else:
            log.event(
                messages.SECURITY_ENV_REJECTED,
                "Not exposing the metadata entry {name} as an environment variable: {reason}",
                level=Level.WARNING,
                name=loggable_name(name),
                reason=why,
            )
    return variables


@attrs.frozen
class AuthResult:
    """The answer of an authenticator (webhook response, static users, ...).

    :ivar success: whether the credentials were accepted.
    :ivar authenticated_username: replaces the login name for later steps when non-empty.
    """

    success: bool
    authenticated_username: str = ""
    metadata: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_frozen_map)
    environment: Mapping[str, MetadataValue] = attrs.field(
        factory=dict, converter=_frozen_map, validator=_only_variables
    )
    files: Mapping[str, FileValue] = attrs.field(factory=dict, converter=_frozen_map)


@attrs.frozen
class ConnectionMetadata:
    """Everything known about a connection so far.

    :ivar connection_id: 32 lowercase hex characters, unique per TCP connection.
    :ivar remote_address: ``"IP:port"``, IPv6 as ``"[::1]:port"``.
    :ivar client_version: the client's SSH version string (may be empty).
    :ivar username: the login name the client asked for.
    :ivar authenticated_username: the name authentication settled on.
    """

    connection_id: str
    remote_address: str
    client_version: str = ""
    username: str = ""
    authenticated_username: str = ""
    metadata: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_frozen_map)
    environment: Mapping[str, MetadataValue] = attrs.field(
        factory=dict, converter=_frozen_map, validator=_only_variables
    )
    files: Mapping[str, FileValue] = attrs.field(factory=dict, converter=_frozen_map)

    @property
    def remote_ip(self) -> str:
        """The client's IP address without the port (and without IPv6 brackets)."""
        host, _, _ = self.remote_address.rpartition(":")
        return host.strip("[]") or self.remote_address

    @property
    def effective_username(self) -> str:
        """The authenticated username, or the login name when none was given."""
        return self.authenticated_username or self.username

    def merge(self, result: AuthResult) -> ConnectionMetadata:
        """Fold an authenticator's answer in, key by key, as ContainerSSH does.

        New keys override old ones; ``authenticated_username`` is replaced only
        when the answer carries a non-empty one.
        """
        return attrs.evolve(
            self,
            authenticated_username=result.authenticated_username or self.authenticated_username,
            metadata={**self.metadata, **result.metadata},
            environment={**self.environment, **result.environment},
            files={**self.files, **result.files},
        )

    def log_fields(self) -> dict[str, str]:
        """The fields every event about this connection carries."""
        fields = {"connectionId": self.connection_id, "remoteAddr": self.remote_address}
        if self.username:
            fields["username"] = self.username
        return fields
