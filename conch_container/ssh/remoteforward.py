"""Remote forwarding (``ssh -R``): ports and Unix sockets the user's container listens on
for the client.

``tcpip-forward`` asks the server to listen on an address and port (RFC
4254, section 7.1), here in the user's container; port 0 asks for any free
port, whose number goes back in the reply. Each connection accepted there
becomes a ``forwarded-tcpip`` channel to the client, which connects it on
its side. ``cancel-tcpip-forward`` stops listening; connections already
forwarded go on. OpenSSH's ``streamlocal-forward@openssh.com`` does the same
for a Unix socket path (``ssh -R /path:...``), with
``forwarded-streamlocal@openssh.com`` channels. The backend listens (``open_listener``), behind the
security policy (``security.forwarding.reverseForwardingMode``).
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh.common import NS
from twisted.internet.defer import Deferred, succeed

from conch_container import messages
from conch_container.backend.forwardlisten import ListenRequest
from conch_container.backend.forwardprotocol import ConnectionType
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.ssh.forwardchannel import ForwardedStreamlocalChannel, ForwardedTcpipChannel
from conch_container.ssh.forwarding import ForwardTarget, valid_bind_host, valid_socket_path
from conch_container.ssh.requests import PayloadError, PayloadReader

NO_LISTENING = "this backend cannot listen in its containers"
#: Listening ports one connection may hold at once (OpenSSH's sshd has no
#: limit of its own; each costs a helper process in the container).
MAX_LISTENERS = 64


def open_accepted_channel(
    avatar: Any, channel_class: Any, target: ForwardTarget, accepted: Any, payload: bytes
) -> None:
    """Open a channel to the client for a connection a listener in the container
    accepted; the connection (a ``ListenedConnection``) is its backend session."""
    channel = channel_class(avatar.session_for(accepted), target, accepted, avatar=avatar)
    avatar.conn.open_forwarded_channel(channel, payload)


class RemoteForwards:
    """One SSH connection's ``tcpip-forward`` listeners.

    :param avatar: the connection's avatar (its log, its backend
        connection, its SSH connection to open channels on).
    """

    def __init__(self, avatar: Any) -> None:
        self._avatar = avatar
        self._listeners: dict[tuple[str, int], Any] = {}
        self._starting = 0

    def request(self, data: bytes, *, unix: bool = False) -> Deferred[Any]:
        """Answer a ``tcpip-forward``: 1, or ``(1, port)`` for port 0, or 0 for failure;
        with ``unix``, a ``streamlocal-forward@openssh.com`` (a socket path only)."""
        log = self._avatar.log
        try:
            reader = PayloadReader(data)
            host = reader.text()
            port = 0 if unix else reader.uint32()
        except PayloadError as e:
            return self._refused("", 0, f"undecodable request: {e}")
        if unix and not valid_socket_path(host):
            return self._refused(host, port, "not a socket path to listen on")
        if not unix and (not valid_bind_host(host) or port > 65535):
            return self._refused(host, port, "not an address and port to listen on")
        if len(self._listeners) + self._starting >= MAX_LISTENERS:
            return self._refused(host, port, f"{MAX_LISTENERS} ports are open already")
        open_listener = getattr(self._avatar.backend_connection, "open_listener", None)
        if open_listener is None:
            return self._refused(host, port, NO_LISTENING)
        try:
            kind = ConnectionType.SOCKET_FORWARD if unix else ConnectionType.PORT_FORWARD
            listener = open_listener(
                ListenRequest(kind, host, port),
                lambda accepted: self._accepted(host, accepted, unix),
            )
        except RequestRejected:
            return succeed(0)  # the policy logged why
        except ContainerSSHError as e:
            e.log(log)
            return succeed(0)
        self._starting += 1
        starting: Deferred[Any] = listener.start()

        def listening(bound: int) -> Any:
            self._starting -= 1
            if (host, bound) in self._listeners:
                listener.close()
                return self._refused_now(host, bound, "that port is forwarded already")
            self._listeners[(host, bound)] = listener
            log.event(
                messages.SSH_FORWARD_LISTEN,
                "The container listens on {bindHost}:{port} for the client",
                bindHost=host,
                port=bound,
                requestedPort=port,
            )
            return (1, struct.pack(">L", bound)) if port == 0 and not unix else 1

        def failed(failure: Any) -> int:
            self._starting -= 1
            error = failure.value
            if isinstance(error, ContainerSSHError):
                error.log(log, bindHost=host, port=port)
            else:
                log.failure(messages.UNKNOWN_ERROR, "Listening failed: {reason}", failure)
            return 0

        starting.addCallbacks(listening, failed)
        return starting

    def cancel(self, data: bytes, *, unix: bool = False) -> int:
        """Answer a ``cancel-tcpip-forward`` (with ``unix``, its socket form): stop
        listening there (1), or 0 if nothing did."""
        try:
            reader = PayloadReader(data)
            key = (reader.text(), 0 if unix else reader.uint32())
        except PayloadError:
            return 0
        listener = self._listeners.pop(key, None)
        if listener is None:
            return 0
        listener.stop()
        self._avatar.log.event(
            messages.SSH_FORWARD_LISTEN,
            "The container stopped listening on {bindHost}:{port} for the client",
            bindHost=key[0],
            port=key[1],
            stopped=True,
        )
        return 1

    def close(self) -> list[Deferred[Any]]:
        """The connection ends: every listener with it; what each close is waiting for."""
        listeners, self._listeners = self._listeners, {}
        return [listener.close() for listener in listeners.values()]

    def _accepted(self, host: str, accepted: Any, unix: bool) -> None:
        """A connection arrived at a listener: open its channel to the client."""
        avatar = self._avatar
        listener_port = accepted.listener_port
        origin = accepted.accepted
        target = ForwardTarget(host, listener_port, origin.originator_host, origin.originator_port)
        if unix:
            # OpenSSH's PROTOCOL, 2.4: the socket path and a reserved string.
            open_accepted_channel(
                avatar,
                ForwardedStreamlocalChannel,
                target,
                accepted,
                NS(host.encode("utf-8")) + NS(b""),
            )
            return
        payload = (
            NS(host.encode("utf-8"))
            + struct.pack(">L", listener_port)
            + NS(origin.originator_host.encode("utf-8"))
            + struct.pack(">L", origin.originator_port)
        )
        open_accepted_channel(avatar, ForwardedTcpipChannel, target, accepted, payload)

    def _refused(self, host: str, port: int, reason: str) -> Deferred[Any]:
        return succeed(self._refused_now(host, port, reason))

    def _refused_now(self, host: str, port: int, reason: str) -> int:
        self._avatar.log.event(
            messages.SSH_FORWARD_FAILED,
            "Not listening on {bindHost}:{port} for the client: {reason}",
            bindHost=host,
            port=port,
            reason=reason,
        )
        return 0
