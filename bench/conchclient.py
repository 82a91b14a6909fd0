"""An SSH client on Twisted Conch, for many sessions from one benchmark process.

Two hundred OpenSSH client processes, each woken five times a second, would
cost the two cores the gateway and the engine share more than one event loop
holding two hundred connections does; so the soak and churn benchmarks drive
the gateway with this client, in the benchmark's own process and reactor.

It does what the OpenSSH client does for the same session: a TCP connection
with ``TCP_NODELAY`` (as OpenSSH sets for interactive sessions), key
exchange, public-key authentication with the benchmark's ed25519 key, one
``session`` channel, and ``pty-req`` plus ``shell``, or ``exec``. The host key
is accepted unchecked: the server is the benchmark's own, on loopback, with a
key made a moment ago.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.conch.ssh import channel, common, connection, keys, session, transport, userauth
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python.failure import Failure

from bench.procs import LOOPBACK
from conch_container.ssh.packettransport import PacketPath

#: Terminal the sessions ask for: type, rows, columns.
TERM = b"xterm"
ROWS, COLUMNS = 24, 80
#: Terminal modes of the ``pty-req``: none set (just TTY_OP_END), the server's defaults.
NO_MODES = b"\x00"


class SSHFailure(Exception):
    """A connection or session could not be made, or ended badly; the message says how."""


def load_key(path: Path) -> keys.Key:
    """The private key the benchmark's ``ssh-keygen`` wrote (OpenSSH format, ed25519)."""
    return keys.Key.fromFile(str(path))


def _describe(reason: Failure | BaseException) -> str:
    value = reason.value if isinstance(reason, Failure) else reason
    return str(value) or type(value).__name__


class Session(channel.SSHChannel):
    """One ``session`` channel: its data goes to ``on_data``; exit status and close are kept."""

    name = b"session"

    def __init__(self, on_data: Callable[[bytes], None] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.on_data = on_data
        self.output = bytearray()
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        #: Fires when the server has accepted the channel.
        self.opened: defer.Deferred[None] = defer.Deferred()
        #: Fires (never fails) when the channel is closed, by either side or with the connection.
        self.done: defer.Deferred[None] = defer.Deferred()

    def channelOpen(self, specificData: bytes) -> None:
        self.opened.callback(None)

    def openFailed(self, reason: Any) -> None:
        self.opened.errback(SSHFailure(f"channel refused: {reason}"))

    def dataReceived(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)
        else:
            self.output += data

    def request_exit_status(self, data: bytes) -> int:
        self.exit_status = struct.unpack(">L", data[:4])[0]
        return 1

    def request_exit_signal(self, data: bytes) -> int:
        name, _ = common.getNS(data)
        self.exit_signal = name.decode(errors="replace")
        return 1

    def closed(self) -> None:
        if not self.opened.called:
            self.opened.errback(SSHFailure("connection closed before the channel opened"))
        if not self.done.called:
            self.done.callback(None)

    def request(self, kind: bytes, data: bytes) -> defer.Deferred[Any]:
        """Send a channel request that wants a reply; fails if the server refuses it."""
        assert self.conn is not None
        d = self.conn.sendRequest(self, kind, data, wantReply=True)
        if d is None:
            return defer.fail(SSHFailure(f"{kind.decode()} request on a closed channel"))
        return d.addErrback(lambda f: _fail(f"{kind.decode()} request refused: {_describe(f)}"))


def _fail(message: str) -> None:
    raise SSHFailure(message)


class _Connection(connection.SSHConnection):
    def __init__(self, link: Link) -> None:
        super().__init__()
        self.link = link

    def serviceStarted(self) -> None:
        super().serviceStarted()
        if not self.link.authenticated.called:
            self.link.authenticated.callback(None)


class _UserAuth(userauth.SSHUserAuthClient):
    """Public-key authentication with one key, offered once."""

    def __init__(self, user: bytes, instance: connection.SSHConnection, key: keys.Key) -> None:
        super().__init__(user, instance)
        self.key = key

    def getPublicKey(self) -> keys.Key | None:
        return None if self.triedPublicKeys else self.key.public()

    def getPrivateKey(self) -> defer.Deferred[keys.Key]:
        return defer.succeed(self.key)


class _Transport(PacketPath, transport.SSHClientTransport):
    """Conch's client on the project's packet path: it speaks the gateway's
    default algorithms (AEAD ciphers, encrypt-then-MAC MACs), which Conch's
    own client does not."""

    link: Link
    supportedCiphers = [b"aes128-gcm@openssh.com", b"chacha20-poly1305@openssh.com"]
    supportedMACs = [b"hmac-sha2-256-etm@openssh.com"]
    supportedKeyExchanges = [b"curve25519-sha256", b"curve25519-sha256@libssh.org"]
    _secure = False

    def connectionMade(self) -> None:
        tcp: Any = self.transport
        tcp.setTcpNoDelay(True)
        super().connectionMade()

    def verifyHostKey(self, hostKey: bytes, fingerprint: bytes) -> defer.Deferred[bool]:
        return defer.succeed(True)

    def connectionSecure(self) -> None:
        # Conch's client calls this after every key exchange, rekeys too.
        if self._secure:
            return
        self._secure = True
        link = self.link
        self.requestService(_UserAuth(link.user, _Connection(link), link.key))

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        self.link.disconnect_reason = description.decode(errors="replace")
        super().receiveError(reasonCode, description)

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.link.lost(reason)


class _Factory(protocol.ClientFactory):
    def __init__(self, link: Link) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> _Transport:
        proto = _Transport()
        proto.factory = self
        proto.link = self.link
        self.link.transport = proto
        return proto


class Link:
    """One SSH connection to the server on loopback ``port``."""

    def __init__(self, port: int, user: str, key: keys.Key) -> None:
        self.port = port
        self.user = user.encode()
        self.key = key
        self.transport: _Transport | None = None
        #: Fires when authentication succeeded; fails if the connection ends first.
        self.authenticated: defer.Deferred[None] = defer.Deferred()
        #: Fires (never fails) when the TCP connection has closed.
        self.closed: defer.Deferred[None] = defer.Deferred()
        #: What the server said in its disconnect message, if it sent one.
        self.disconnect_reason: str | None = None

    def lost(self, reason: Failure | None) -> None:
        why = self.disconnect_reason or (_describe(reason) if reason else "connection lost")
        if not self.authenticated.called:
            self.authenticated.errback(SSHFailure(f"connection ended before login: {why}"))
        if not self.closed.called:
            self.closed.callback(None)

    @property
    def conn(self) -> connection.SSHConnection:
        assert self.transport is not None
        service = self.transport.service
        if not isinstance(service, connection.SSHConnection):
            raise SSHFailure("not logged in")
        return service

    async def connect(self, timeout: float) -> None:
        """Connect, exchange keys and log in, within ``timeout`` seconds."""
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.port, timeout=int(timeout) or 1)
        d = endpoint.connect(_Factory(self))
        d.addCallback(lambda _: self.authenticated)
        d.addTimeout(timeout, reactor)
        try:
            await d
        except defer.TimeoutError:
            self.abort()
            raise SSHFailure(f"no login within {timeout:.0f} s") from None
        except SSHFailure:
            raise
        except Exception as e:
            raise SSHFailure(f"cannot connect: {_describe(e)}") from None

    async def open_session(
        self,
        command: str | None,
        pty: bool,
        on_data: Callable[[bytes], None] | None = None,
        timeout: float = 60.0,
    ) -> Session:
        """A session channel running ``command`` (``exec``) or the shell (``None``)."""
        chan = Session(on_data=on_data, conn=self.conn)
        self.conn.openChannel(chan)
        d = defer.ensureDeferred(self._start(chan, command, pty)).addTimeout(timeout, reactor)
        try:
            await d
        except defer.TimeoutError:
            raise SSHFailure(f"session not started within {timeout:.0f} s") from None
        return chan

    @staticmethod
    async def _start(chan: Session, command: str | None, pty: bool) -> None:
        await chan.opened
        if pty:
            geometry = (ROWS, COLUMNS, 0, 0)
            await chan.request(b"pty-req", session.packRequest_pty_req(TERM, geometry, NO_MODES))
        if command is None:
            await chan.request(b"shell", b"")
        else:
            await chan.request(b"exec", common.NS(command.encode()))

    async def close(self, timeout: float = 10.0) -> None:
        """Disconnect (as the OpenSSH client does, with a disconnect message) and wait."""
        if self.transport is not None and not self.closed.called:
            self.transport.loseConnection()
        try:
            await when(self.closed, timeout)
        except defer.TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        tcp: Any = self.transport.transport if self.transport is not None else None
        if tcp is not None:
            tcp.abortConnection()


def sleep(seconds: float) -> defer.Deferred[None]:
    """A Deferred that fires after ``seconds``."""
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(max(0.0, seconds), d.callback, None)
    return d


def when(d: defer.Deferred[Any], timeout: float) -> defer.Deferred[None]:
    """A new Deferred firing when ``d`` does (``d`` left alone), or failing after ``timeout``."""
    waiter: defer.Deferred[None] = defer.Deferred()

    def fire(result: object) -> object:
        if not waiter.called:
            waiter.callback(None)
        return result

    d.addBoth(fire)
    return waiter.addTimeout(timeout, reactor)
