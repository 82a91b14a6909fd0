"""What instrumented code calls: small recorder interfaces, and ones that record nothing.

The SSH server, the authenticators, the backend and the audit storage know
only these :class:`~typing.Protocol` types, never ``prometheus_client``:
:class:`~conch_container.metrics.gateway.GatewayMetrics` provides them when
``metrics.enable`` is on, and :data:`NULL_METRICS` otherwise. A call on the
null recorders is one method call that does nothing, so instrumentation costs
next to nothing on a gateway that serves no metrics.

Webhook clients record each attempt with a :class:`WebhookRecorder`, which is
how ContainerSSH counts its auth and config server calls:

- :meth:`~WebhookRecorder.request` before every attempt, ``retry`` False
  for the first one and True for the ones after a failure;
- :meth:`~WebhookRecorder.latency` when the attempt ended, whatever its outcome;
- :meth:`~WebhookRecorder.failure` for an attempt without an answer, ``hard``
  False when another attempt follows and True when the client gives up
  (then after the soft one for the same attempt, as ContainerSSH counts it),
  with ``reason`` the message code of the failure;
- for the authentication webhooks, :meth:`AuthRecorder.decision` when an
  answer came.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs


@attrs.frozen
class AuditBacklog:
    """What the audit storage still has to upload.

    :ivar bytes: recorded bytes not uploaded yet.
    :ivar streams: connections whose recording is not completely uploaded yet.
    """

    bytes: int
    streams: int


@attrs.frozen
class PoolCounts:
    """A backend's warm pool containers, over every template.

    :ivar ready: created and started, waiting for a connection.
    :ivar starting: being created or started.
    """

    ready: int = 0
    starting: int = 0


@attrs.frozen
class SharedCounts:
    """Containers shared by key (``session.containerKey``), over every backend.

    :ivar in_use: used by at least one connection.
    :ivar kept: used by none, kept for ``session.keepAlive``.
    """

    in_use: int = 0
    kept: int = 0


class WebhookRecorder(Protocol):
    """The attempts of one webhook client (see the module documentation)."""

    def request(self, retry: bool) -> None:
        """An attempt starts; ``retry`` is True unless it is the first one."""

    def failure(self, hard: bool, retry: bool, reason: str) -> None:
        """An attempt brought no answer; ``reason`` is its message code."""

    def latency(self, seconds: float) -> None:
        """An attempt ended after ``seconds``, with or without an answer."""


class AuthRecorder(WebhookRecorder, Protocol):
    """An authentication webhook's attempts, and its decisions."""

    def decision(self, success: bool, retry: bool, remote_address: str) -> None:
        """The server answered: the user is (``success``) or is not let in."""


class BackendRecorder(Protocol):
    """What one backend (``docker``, ``kubernetes``, ``sshproxy``) did for connections."""

    def request(self) -> None:
        """A connection is handed to the backend."""

    def error(self) -> None:
        """The backend could not prepare a connection."""

    def setup_latency(self, seconds: float) -> None:
        """A connection was ready ``seconds`` after its user authenticated."""

    def removal_failed(self) -> None:
        """The backend gave up removing a container it created."""

    def pool_handover(self) -> None:
        """A connection took a warm pool container."""

    def pool_miss(self) -> None:
        """A connection found its template's warm pool empty and created its own."""

    def watch_pool(self, source: Callable[[], PoolCounts]) -> None:
        """Read the warm pool's counts from ``source`` at each scrape."""


class Metrics(Protocol):
    """Everything the gateway records; built once, handed to the components."""

    def connected(self, remote_address: str) -> str:
        """A TCP connection was accepted; returns its country label for the calls below."""

    def disconnected(self, country: str) -> None:
        """A connection of ``country`` closed."""

    def handshake_succeeded(self, country: str) -> None:
        """A connection authenticated (ContainerSSH's successful handshake)."""

    def handshake_failed(self, country: str) -> None:
        """A connection closed without authenticating."""

    def session_started(self) -> None:
        """A session channel's program runs."""

    def session_ended(self) -> None:
        """A program counted by :meth:`session_started` ended, or its channel closed."""

    def auth_webhook(self, authtype: str) -> AuthRecorder:
        """The recorder of the auth webhook for ``password``, ``pubkey`` or ``authorization``."""

    def config_webhook(self) -> WebhookRecorder:
        """The recorder of the configuration webhook."""

    def backend(self, name: str) -> BackendRecorder:
        """The recorder of the backend ``name``."""

    def watch_audit_backlog(self, source: Callable[[], AuditBacklog]) -> None:
        """Read the audit upload backlog from ``source`` at each scrape."""

    def watch_shared_containers(self, source: Callable[[], SharedCounts]) -> None:
        """Read the containers shared by key from ``source`` at each scrape."""


class _NullWebhookRecorder:
    def request(self, retry: bool) -> None:
        pass

    def failure(self, hard: bool, retry: bool, reason: str) -> None:
        pass

    def latency(self, seconds: float) -> None:
        pass

    def decision(self, success: bool, retry: bool, remote_address: str) -> None:
        pass


class _NullBackendRecorder:
    def request(self) -> None:
        pass

    def error(self) -> None:
        pass

    def setup_latency(self, seconds: float) -> None:
        pass

    def removal_failed(self) -> None:
        pass

    def pool_handover(self) -> None:
        pass

    def pool_miss(self) -> None:
        pass

    def watch_pool(self, source: Callable[[], PoolCounts]) -> None:
        pass


NULL_WEBHOOK_RECORDER: AuthRecorder = _NullWebhookRecorder()
NULL_BACKEND_RECORDER: BackendRecorder = _NullBackendRecorder()


class NullMetrics:
    """Records nothing: the gateway's metrics when ``metrics.enable`` is off."""

    def connected(self, remote_address: str) -> str:
        return ""

    def disconnected(self, country: str) -> None:
        pass

    def handshake_succeeded(self, country: str) -> None:
        pass

    def handshake_failed(self, country: str) -> None:
        pass

    def session_started(self) -> None:
        pass

    def session_ended(self) -> None:
        pass

    def auth_webhook(self, authtype: str) -> AuthRecorder:
        return NULL_WEBHOOK_RECORDER

    def config_webhook(self) -> WebhookRecorder:
        return NULL_WEBHOOK_RECORDER

    def backend(self, name: str) -> BackendRecorder:
        return NULL_BACKEND_RECORDER

    def watch_audit_backlog(self, source: Callable[[], AuditBacklog]) -> None:
        pass

    def watch_shared_containers(self, source: Callable[[], SharedCounts]) -> None:
        pass


#: The metrics of a gateway that serves none; the default of every component.
NULL_METRICS: Metrics = NullMetrics()
