"""An in-test WebSocket server on loopback that speaks the ``channel.k8s.io`` protocol.

It answers one exec or attach upgrade as the API server does: it picks the
first of the client's subprotocols it supports (or none, or refuses with an
HTTP status), records the request and every message it receives, and lets
the test send channel messages and close or drop the connection.
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort

from conch_container.backend.kubernetes.channels import ERROR, V4, V5


class ChannelServerProtocol(WebSocketServerProtocol):
    factory: ChannelServerFactory

    def onConnect(self, request: Any) -> str | None:
        server = self.factory.server
        server.request = request
        if server.refuse_status is not None:
            raise ConnectionDeny(server.refuse_status, "refused by the test")
        for offered in request.protocols:
            if offered in server.supported:
                return str(offered)
        return None

    def onOpen(self) -> None:
        server = self.factory.server
        server.protocol = self
        server._fire(server._opened, self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        server = self.factory.server
        server.received.append(bytes(payload))
        waiters, server._message_waiters = server._message_waiters, []
        for count, d in waiters:
            if len(server.received) >= count:
                d.callback(list(server.received))
            else:
                server._message_waiters.append((count, d))

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        server = self.factory.server
        if server.linger and self.state == WebSocketServerProtocol.STATE_CLOSING:
            # The client's answer to our close: keep the TCP connection open.
            server._fire(server._close_answered, None)
            return None
        return super().onCloseFrame(code, reasonRaw)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.server.connection_closed = True
        self.factory.server._fire(self.factory.server._closed, None)


class ChannelServerFactory(WebSocketServerFactory):
    protocol = ChannelServerProtocol

    def __init__(self, server: ChannelServer) -> None:
        super().__init__()
        self.server = server


class ChannelServer:
    """One listening fake; ``base_url`` is where it listens.

    :ivar supported: the subprotocols it accepts, in no particular order.
    :ivar refuse_status: if set, the upgrade is refused with this HTTP status.
    :ivar request: the last upgrade request (autobahn's ``ConnectionRequest``).
    :ivar received: every message received, in order.
    :ivar linger: after :meth:`finish`, keep the TCP connection open once the
        client answered the close (a server that ends the WebSocket but not
        the connection: the client drops it after its own timeout).
    """

    def __init__(self, supported: tuple[str, ...] = (V5, V4)) -> None:
        self.supported = supported
        self.refuse_status: int | None = None
        self.request: Any = None
        self.protocol: ChannelServerProtocol | None = None
        self.connection_closed = False
        self.received: list[bytes] = []
        self.linger = False
        self._close_answered: list[Deferred[Any]] = []
        self._opened: list[Deferred[Any]] = []
        self._closed: list[Deferred[Any]] = []
        self._message_waiters: list[tuple[int, Deferred[list[bytes]]]] = []
        self._port: IListeningPort | None = None

    def listen(self, tls: Any = None) -> str:
        """Listen on loopback (with ``tls``, a server context factory, over TLS); the base URL."""
        factory = ChannelServerFactory(self)
        factory.setProtocolOptions(openHandshakeTimeout=0)
        r: Any = global_reactor
        if tls is None:
            self._port = r.listenTCP(0, factory, interface="127.0.0.1")
        else:
            self._port = r.listenSSL(0, factory, tls, interface="127.0.0.1")
        assert self._port is not None
        scheme = "https" if tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port.getHost().port}"

    def stop(self) -> Deferred[Any]:
        if self.protocol is not None and not self.connection_closed:
            self.protocol.transport.abortConnection()  # type: ignore[attr-defined]
        assert self._port is not None
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        assert self._port is not None
        await maybeDeferred(self._port.stopListening)

    @staticmethod
    def _fire(waiters: list[Deferred[Any]], value: Any) -> None:
        pending = list(waiters)
        waiters.clear()
        for d in pending:
            d.callback(value)

    def opened(self) -> Deferred[ChannelServerProtocol]:
        if self.protocol is not None:
            d: Deferred[Any] = Deferred()
            d.callback(self.protocol)
            return d
        d = Deferred()
        self._opened.append(d)
        return d

    def closed(self) -> Deferred[None]:
        d: Deferred[Any] = Deferred()
        self._closed.append(d)
        return d

    def close_answered(self) -> Deferred[None]:
        """Fires when the client answered :meth:`finish` (with :attr:`linger` only)."""
        d: Deferred[Any] = Deferred()
        self._close_answered.append(d)
        return d

    def messages(self, count: int) -> Deferred[list[bytes]]:
        """Fires with :attr:`received` once it holds ``count`` messages."""
        d: Deferred[list[bytes]] = Deferred()
        if len(self.received) >= count:
            d.callback(list(self.received))
        else:
            self._message_waiters.append((count, d))
        return d

    def send(self, channel: int, data: bytes) -> None:
        assert self.protocol is not None
        self.protocol.sendMessage(bytes((channel,)) + data, isBinary=True)

    def send_status(self, status: dict[str, Any]) -> None:
        self.send(ERROR, json.dumps(status).encode())

    def finish(self) -> None:
        """Close the WebSocket cleanly, as the API server does after the status."""
        assert self.protocol is not None
        self.protocol.sendClose(1000)

    def drop(self) -> None:
        """Drop the TCP connection without a close handshake."""
        assert self.protocol is not None
        self.protocol.transport.abortConnection()  # type: ignore[union-attr]


def exit_status(code: int) -> dict[str, Any]:
    """The ``Status`` the API server sends for a program's exit code."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
