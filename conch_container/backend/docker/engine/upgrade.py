"""The HTTP upgrade that turns an engine request into a program's raw stream.

``POST /exec/{id}/start`` and ``POST /containers/{id}/attach`` are answered
with ``101 UPGRADED``, after which the same connection carries the program's
stdin one way and its output the other. This module makes that request from
the reactor, over the engine's own endpoint (a UNIX socket, TCP, or TCP with
TLS), reads the answer's head with a size bound and a deadline, and hands the
connection as it is to the program's stream protocol: no thread holds it, no
descriptor changes hands, and every transport the engine is reached over works
alike.

Ordinary engine calls still go through docker-py on the backend's thread pool
(:mod:`.api`); only the streams are made here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container.backend.docker.engine.client import EngineSettings
from conch_container.backend.docker.engine.errors import EngineError

#: The most an answer's status line and headers may take.
MAX_HEAD = 64 * 1024
#: The most of an error answer's body that is read (the engine sends a short JSON).
MAX_ERROR_BODY = 64 * 1024
#: Statuses that mean the connection now carries the stream (older engines answer 200).
UPGRADED = (101, 200)

_TLS_MINIMUM = ssl.TLSVersion.TLSv1_2
_DEFAULT_PORT = {False: 2375, True: 2376}


class EngineStreams:
    """Opens program streams on one engine endpoint.

    :param reactor: provides ``connectTCP``/``connectUNIX`` and the clock.
    :param settings: where the engine is and how to reach it (TLS material
        included); refused with :class:`EngineError` when it cannot be used.
    """

    def __init__(self, reactor: Any, settings: EngineSettings) -> None:
        self._reactor = reactor
        self._timeout = settings.timeout
        self._endpoint, self._host_header = _endpoint(reactor, settings)

    def open(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
    ) -> Deferred[UpgradedStream]:
        """``POST path`` (with the API version prefix) as an upgrade; the stream.

        Cancelling the result before it fires drops the connection.

        :raises EngineError: (through the Deferred) when no connection could be
            made (``unsent``), the engine answered with an error status, its
            answer was unreadable, or no answer came within the HTTP timeout.
        """
        request = upgrade_request(self._host_header, path, params, body)
        return _upgrade(self._reactor, self._endpoint, request, self._timeout)


def upgrade_request(
    host: str, path: str, params: Mapping[str, str] | None = None, body: object = None
) -> bytes:
    """The bytes of an upgrade request for ``path`` (``body`` is sent as JSON)."""
    target = path + (f"?{urlencode(dict(params))}" if params else "")
    payload = b"" if body is None else json.dumps(body).encode("utf-8")
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {host}",
        "User-Agent: conch-container",
        "Connection: Upgrade",
        "Upgrade: tcp",
        f"Content-Length: {len(payload)}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload


def _endpoint(reactor: Any, settings: EngineSettings) -> tuple[IStreamClientEndpoint, str]:
    """The endpoint of ``settings.host`` and the ``Host`` header to send there."""
    url = urlsplit(settings.host)
    timeout = max(settings.timeout, 0.1)
    if url.scheme == "unix":
        if not url.path:
            raise EngineError(f"no socket path in the engine address {settings.host!r}")
        return UNIXClientEndpoint(reactor, url.path, timeout=timeout), "docker"
    if url.scheme not in ("tcp", "http", "https"):
        raise EngineError(f"unsupported engine address {settings.host!r} (use unix:// or tcp://)")
    hostname = url.hostname
    if not hostname:
        raise EngineError(f"no host in the engine address {settings.host!r}")
    try:
        port = url.port or _DEFAULT_PORT[settings.tls]
    except ValueError:
        raise EngineError(f"bad port in the engine address {settings.host!r}") from None
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, hostname, port, timeout=timeout)
    if settings.tls:
        endpoint = _TLSEndpoint(reactor, endpoint, tls_options(settings, hostname))
    host_header = f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"
    return endpoint, host_header


def tls_options(settings: EngineSettings, hostname: str) -> Any:
    """Client TLS options: the engine's certificate checked against ``cacert``
    for ``hostname`` (a name or an IP address), the client certificate, TLS 1.2
    at least, as docker-py and ContainerSSH connect.

    :raises EngineError: when the PEM material cannot be used.
    """
    try:
        authorities = [
            ssl.Certificate.loadPEM(c.public_bytes(Encoding.PEM))
            for c in x509.load_pem_x509_certificates(settings.cacert.encode("utf-8"))
        ]
        client = ssl.PrivateCertificate.loadPEM(f"{settings.cert}\n{settings.key}")
        return ssl.optionsForClientTLS(
            hostname,
            trustRoot=ssl.trustRootFromCertificates(authorities),
            clientCertificate=client,
            extraCertificateOptions={"raiseMinimumTo": _TLS_MINIMUM},
        )
    except Exception as e:  # pyOpenSSL and cryptography raise many kinds
        raise EngineError(f"unusable TLS settings for the engine: {e}") from None


@implementer(IStreamClientEndpoint)
class _TLSEndpoint:
    """TLS over ``endpoint``, with :class:`_HalfClosedTCP` between TLS and TCP."""

    def __init__(self, reactor: Any, endpoint: IStreamClientEndpoint, options: Any) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self._options = options

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        tls = TLSMemoryBIOFactory(self._options, True, factory)
        connecting: Deferred[Any] = self._endpoint.connect(
            _HalfClosedTCPFactory(tls, self._reactor)
        )
        # The caller gets its own protocol, as from ``wrapClientTLS``.
        return connecting.addCallback(lambda guard: guard.wrappedProtocol.wrappedProtocol)


class _HalfClosedTCP(ProtocolWrapper):
    """Between a TLS layer and its TCP connection: ends stdin below TLS.

    Go's TLS connection cannot half-close, so Docker's own client ends a
    program's stdin over TLS with a TCP half-close under the TLS layer, and
    the engine reads that as the end of stdin; this does the same
    (:meth:`loseWriteConnection`: Twisted's TLS layer has no half-close of
    its own and passes the call on to the transport below it). Twisted's TLS
    layer then closes the connection from inside its read loop when the
    engine's ``close_notify`` arrives, and a TCP transport whose write side
    is already shut finishes a close at once, which re-enters the TLS layer
    in the middle of that read; so that close is made on the next turn of the
    reactor instead.
    """

    transport: Any

    def __init__(self, factory: Any, wrappedProtocol: Any, reactor: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self._reactor = reactor
        self._write_closed = False

    def loseWriteConnection(self) -> None:
        self._write_closed = True
        self.transport.loseWriteConnection()

    def loseConnection(self) -> None:
        if self._write_closed:
            self._reactor.callLater(0, self.transport.loseConnection)
        else:
            self.transport.loseConnection()


class _HalfClosedTCPFactory(WrappingFactory):
    protocol = _HalfClosedTCP

    def __init__(self, wrappedFactory: Any, reactor: Any) -> None:
        super().__init__(wrappedFactory)
        self._reactor = reactor

    def buildProtocol(self, addr: Any) -> _HalfClosedTCP:
        return _HalfClosedTCP(self, self.wrappedFactory.buildProtocol(addr), self._reactor)


def _upgrade(
    reactor: Any, endpoint: IStreamClientEndpoint, request: bytes, timeout: float
) -> Deferred[UpgradedStream]:
    protocol: UpgradeProtocol | None = None
    connecting: Deferred[Any] | None = None

    def cancel(d: Deferred[UpgradedStream]) -> None:
        if connecting is not None and not connecting.called:
            connecting.cancel()
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()

    answered: Deferred[UpgradedStream] = Deferred(cancel)

    def expire() -> None:
        if answered.called:
            return
        reason = f"the engine did not answer within {timeout:g} s"
        answered.errback(EngineError(reason))
        cancel(answered)

    timer = reactor.callLater(timeout, expire)

    def stop_timer(result: object) -> object:
        if timer.active():
            timer.cancel()
        return result

    answered.addBoth(stop_timer)

    def connected(p: UpgradeProtocol) -> None:
        nonlocal protocol
        protocol = p
        if answered.called:  # cancelled or expired while connecting
            p.transport.abortConnection()

    def not_connected(failure: Failure) -> None:
        if answered.called:
            return
        if failure.check(CancelledError):
            return
        answered.errback(EngineError(failure.getErrorMessage(), unsent=True))

    factory = Factory.forProtocol(lambda: UpgradeProtocol(request, answered))
    connecting = endpoint.connect(factory)
    connecting.addCallbacks(connected, not_connected)
    return answered


class UpgradedStream:
    """An engine connection after the upgrade, until a protocol takes it over.

    Nothing is read from the engine while no protocol is attached (the
    transport is paused); what arrived together with the answer's head, and an
    end of the stream seen meanwhile, are passed on by :meth:`attach`.
    """

    def __init__(self, transport: Any, leftover: bytes) -> None:
        self.transport = transport
        self._protocol: IProtocol | None = None
        self._pending: list[bytes] = [leftover] if leftover else []
        self._read_lost = False
        self._lost: Failure | None = None
        self._closed = False
        transport.pauseProducing()

    def attach(self, protocol: Protocol) -> Any:
        """Give the connection to ``protocol`` (its ``transport`` is set); the transport."""
        if self._protocol is not None or self._closed:
            raise EngineError("the stream was already taken or closed")
        self._protocol = protocol
        protocol.makeConnection(self.transport)
        if self._lost is None:
            self.transport.resumeProducing()
        pending, self._pending = self._pending, []
        for data in pending:
            protocol.dataReceived(data)
        if self._read_lost:
            half = IHalfCloseableProtocol(protocol, None)
            if half is not None:
                half.readConnectionLost()
        if self._lost is not None:
            protocol.connectionLost(self._lost)
        return self.transport

    def close(self) -> None:
        """Drop a stream nobody took (idempotent; a taken stream is its protocol's)."""
        if self._protocol is None and not self._closed:
            self._closed = True
            self.transport.abortConnection()

    # -- from the upgrade protocol

    def data_received(self, data: bytes) -> None:
        if self._protocol is not None:
            self._protocol.dataReceived(data)
        else:
            # At most what one read returned after the pause: bounded.
            self._pending.append(data)

    def read_connection_lost(self) -> None:
        if self._protocol is None:
            self._read_lost = True
            return
        half = IHalfCloseableProtocol(self._protocol, None)
        if half is not None:
            half.readConnectionLost()
        else:
            self.transport.loseConnection()

    def write_connection_lost(self) -> None:
        half = IHalfCloseableProtocol(self._protocol, None) if self._protocol else None
        if half is not None:
            half.writeConnectionLost()

    def connection_lost(self, reason: Failure) -> None:
        if self._protocol is None:
            self._lost = reason
        else:
            self._protocol.connectionLost(reason)


_CONNECTION_DONE = Failure(ConnectionDone())
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?")


#: Bytes read from an upgraded stream at once (Twisted reads 64 KiB by default).
STREAM_READ_SIZE = 256 * 1024


@implementer(IHalfCloseableProtocol)
class UpgradeProtocol(Protocol):
    """Sends the upgrade request and reads the answer's head; then relays.

    :param request: the request's bytes (:func:`upgrade_request`); nothing is
        sent when empty (a stream whose answer is already on its way).
    :param answered: fired with the :class:`UpgradedStream`, or failed with
        :class:`EngineError`.
    """

    transport: Any

    def __init__(self, request: bytes, answered: Deferred[UpgradedStream]) -> None:
        self._request = request
        self._answered = answered
        self._buffer = bytearray()
        self._status: int | None = None
        self._headers: dict[bytes, bytes] = {}
        self._stream: UpgradedStream | None = None

    def connectionMade(self) -> None:
        # A program's output arrives as fast as the engine copies it: read it
        # in large pieces, so the reactor wakes less often per megabyte.
        self.transport.bufferSize = STREAM_READ_SIZE
        if self._request:
            self.transport.write(self._request)

    def dataReceived(self, data: bytes) -> None:
        if self._stream is not None:
            self._stream.data_received(data)
            return
        self._buffer += data
        if self._status is None:
            self._read_head()
        if self._status is not None and self._stream is None:
            self._read_error_body(complete=False)

    def _read_head(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                self._fail(f"the engine's answer head exceeds {MAX_HEAD} bytes")
            return
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        status_line, *header_lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            self._fail(f"unreadable answer from the engine: {status_line[:80]!r}")
            return
        self._status = int(match.group(1))
        for line in header_lines:
            name, colon, value = line.partition(b":")
            if colon:
                self._headers[name.strip().lower()] = value.strip()
        if self._status in UPGRADED:
            leftover, self._buffer = bytes(self._buffer), bytearray()
            self._stream = UpgradedStream(self.transport, leftover)
            if self._answered.called:
                self._stream.close()
            else:
                self._answered.callback(self._stream)

    def _read_error_body(self, *, complete: bool) -> None:
        """Fail with the engine's error once its body is in (or the connection ended)."""
        body = bytes(self._buffer)
        length = self._headers.get(b"content-length")
        if b"chunked" in self._headers.get(b"transfer-encoding", b"").lower():
            decoded = _dechunk(body)
            if decoded is None and not complete and len(body) <= MAX_ERROR_BODY:
                return
            body = decoded if decoded is not None else b""
        elif length is not None and length.isdigit():
            if len(body) < int(length) and not complete and len(body) <= MAX_ERROR_BODY:
                return
            body = body[: int(length)]
        elif not complete and len(body) <= MAX_ERROR_BODY:
            return  # no length: the body ends with the connection
        status = self._status
        assert status is not None
        self._fail(_error_message(body, status), status)

    def _fail(self, message: str, status: int | None = None) -> None:
        if not self._answered.called:
            self._answered.errback(EngineError(message, status))
        self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        if self._stream is not None:
            self._stream.read_connection_lost()
        else:
            self._ended()

    def writeConnectionLost(self) -> None:
        if self._stream is not None:
            self._stream.write_connection_lost()

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        if self._stream is not None:
            self._stream.connection_lost(reason)
        else:
            self._ended(reason)

    def _ended(self, reason: Failure | None = None) -> None:
        if self._answered.called:
            return
        if self._status is not None:
            self._read_error_body(complete=True)
            return
        why = reason.getErrorMessage() if reason is not None else "the connection was closed"
        self._answered.errback(EngineError(f"the engine closed the connection: {why}"))


def _dechunk(body: bytes) -> bytes | None:
    """A complete chunked body decoded, or None while it is incomplete."""
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return None
        try:
            size = int(body[pos:end].split(b";")[0], 16)
        except ValueError:
            return bytes(out)
        if size == 0:
            return bytes(out)
        start = end + 2
        if len(body) < start + size + 2:
            return None
        out += body[start : start + size]
        pos = start + size + 2


def _error_message(body: bytes, status: int) -> str:
    """The engine's ``message`` from a JSON error body, or a plain description."""
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()[:200]
        return f"HTTP {status}" + (f": {text}" if text else "")
    return str(message)
