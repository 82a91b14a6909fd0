"""The TCP listener of the SSH server, as a service that logs what ContainerSSH logs."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.codes import MessageCode
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log import CodeLogger

#: Connections the kernel may queue before the gateway accepts them; capped
#: by ``net.core.somaxconn``. Twisted's default of 50 overflows at the first
#: burst of connections (a flood, or many users at once), and the kernel then
#: drops the SYNs of everyone, legitimate clients included, who retry only a
#: second later. ContainerSSH (Go) listens with the kernel's maximum too.
LISTEN_BACKLOG = 4096


def endpoint_description(listen: str) -> str:
    """A Twisted endpoint string for a ContainerSSH ``host:port`` listen address.

    ``0.0.0.0:2222`` -> ``tcp:2222:interface=0.0.0.0:backlog=4096``;
    ``[::]:2222`` -> ``tcp6:2222:interface=\\:\\::backlog=4096``; ``:2222`` listens
    on all IPv4 addresses, as Go's ``net.Listen`` would on a dual-stack host.
    """
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if ":" in host:
        # Colons separate endpoint arguments; an IPv6 address escapes its own.
        escaped = host.replace(":", "\\:")
        return f"tcp6:{port}:interface={escaped}:backlog={LISTEN_BACKLOG}"
    return f"tcp:{port}:interface={host or '0.0.0.0'}:backlog={LISTEN_BACKLOG}"


def listen_or_fail(
    reactor: Any,
    listen: str,
    factory: IProtocolFactory,
    log: CodeLogger,
    failed: MessageCode,
    **fields: Any,
) -> Deferred[IListeningPort]:
    """Listen on a ContainerSSH ``host:port`` address; the Deferred fires with the port.

    When the address cannot be bound, ``failed`` is logged with the address
    and the reason (and ``fields``), and the Deferred fails with a
    :class:`ContainerSSHError` carrying that code, which the service tree
    reports as a crashed service instead of a traceback.
    """
    d = serverFromString(reactor, endpoint_description(listen)).listen(factory)

    def refused(failure: Failure) -> IListeningPort:
        reason = failure.getErrorMessage()
        log.event(
            failed, "Cannot listen on {listen}: {reason}", listen=listen, reason=reason, **fields
        )
        raise ContainerSSHError(
            failed, GENERIC_USER_MESSAGE, f"cannot listen on {listen}: {reason}"
        )

    listening: Deferred[IListeningPort] = d.addErrback(refused)
    return listening


class ListenerService(Service):
    """Listens on ``listen`` with ``factory`` while running.

    Logs ``SSH_AVAILABLE`` once listening and ``SSH_START_FAILED`` (then fails
    its start) when the address cannot be bound, so the root service can stop
    the process with a clear message instead of a traceback.
    """

    name = "ssh"

    def __init__(self, reactor: Any, listen: str, factory: Factory, log: CodeLogger) -> None:
        self._reactor = reactor
        self._listen = listen
        self._factory = factory
        self._log = log.bind(module="ssh")
        self.port: IListeningPort | None = None

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        d = listen_or_fail(
            self._reactor, self._listen, self._factory, self._log, messages.SSH_START_FAILED
        )

        def listening(port: IListeningPort) -> None:
            self.port = port
            self._log.event(
                messages.SSH_AVAILABLE, "SSH server listening on {listen}", listen=self._listen
            )

        started: Deferred[None] = d.addCallback(listening)
        return started

    def stopService(self) -> Deferred[Any] | None:
        Service.stopService(self)
        port, self.port = self.port, None
        if port is None:
            return None
        d = Deferred.fromCoroutine(_stop(port))

        def close_failed(failure: Failure) -> None:
            self._log.event(
                messages.SSH_LISTEN_CLOSE_FAILED,
                "Cannot close the listen socket: {reason}",
                reason=failure.getErrorMessage(),
            )

        return d.addErrback(close_failed)


async def _stop(port: IListeningPort) -> None:
    await port.stopListening()  # type: ignore[misc]
