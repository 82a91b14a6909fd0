"""Exec and attach streams: a WebSocket to the API server, in the reactor.

:func:`open_channel_stream` connects (TCP, or TLS with the cluster's CA,
client certificate and ``serverName``), sends the upgrade with the
``Authorization`` header and the subprotocols ``v5.channel.k8s.io`` and
``v4.channel.k8s.io`` (the server picks; an older server's v4 is the
fallback), and gives back the :class:`ChannelStream` once the handshake is
done. No thread is held: autobahn's protocol runs on the reactor.

A :class:`ChannelStream` is what a program session needs of a stream
(:class:`~conch_container.backend.programsession.ProgramTransport` and
:class:`~conch_container.backend.programsession.InputGate`):

- output: stdout and stderr go to the sinks given; pausing the stream (it
  is the output's push producer) stops reading the socket, so a full SSH
  window holds the API server back instead of filling memory;
- stdin: :meth:`~ChannelStream.write` sends it; stdin's producer is
  registered with the socket's transport, which pauses it while more than
  its buffer waits to be sent;
- :meth:`~ChannelStream.loseWriteConnection` closes stdin (v5 only; under
  v4 further stdin is dropped and the program never sees its end);
- :meth:`~ChannelStream.resize`, the exit status (:attr:`~ChannelStream.exit_status`)
  and the guest agent's PID, as the Docker backend's stream reports them
  (:class:`StreamEvents`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import ssl
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from conch_container import messages
from conch_container.backend.agentprotocol import PidReader, TerminalPidReader, plausible_pid
from conch_container.backend.kubernetes.channels import (
    ERROR,
    MAX_STATUS,
    STDERR,
    STDIN,
    STDOUT,
    SUBPROTOCOLS,
    V5,
    ExitStatus,
    close_stdin_frame,
    frame,
    parse_status,
    resize_frame,
)
from conch_container.backend.kubernetes.connection import ClusterSettings
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.deferreds import DeadlineExceeded, with_deadline

Sink = Callable[[bytes], Any]

#: The most one message may carry (the API server sends at most 32 KiB of output per message).
MAX_MESSAGE = 1024 * 1024
_TLS_MINIMUM = ssl.TLSVersion.TLSv1_2


class StreamRefused(Exception):
    """The server closed the connection before the WebSocket handshake was done."""


class StreamEvents(Protocol):
    """What a :class:`ChannelStream` reports besides output (the program session)."""

    def pid_received(self, pid: int) -> None: ...

    def pid_failed(self, reason: str) -> None: ...

    def output_ended(self, error: str | None) -> None:
        """The stream ended; ``error`` says what was wrong, if anything.

        The exit status, if the server sent one, is in
        :attr:`ChannelStream.exit_status` by then.
        """

    def stream_closed(self) -> None:
        """The connection is fully closed (after :meth:`output_ended`)."""


class _DebugLog:
    """autobahn's log for streams, every event at debug level.

    Whatever goes wrong with a stream (a refused handshake, a dropped or
    failed connection) reaches its owner as the stream's error, which is
    logged there under a message code at the level it deserves; autobahn's
    own warnings about the same event would be uncoded duplicates.
    """

    def __init__(self) -> None:
        self._log = Logger(namespace="autobahn")

    def debug(self, format: str | None = None, **kwargs: Any) -> None:
        self._log.debug(format, **kwargs)

    info = warn = error = trace = debug

    def failure(self, format: str | None = None, failure: Any = None, **kwargs: Any) -> None:
        self._log.failure(format or "", failure, level=LogLevel.debug, **kwargs)


@implementer(IPushProducer)
class ChannelStream(WebSocketClientProtocol):
    """One exec or attach stream; made by :func:`open_channel_stream`.

    :ivar exit_status: the error channel's verdict, None until it came.
    :ivar subprotocol: the channel protocol the server chose.
    """

    log = _DebugLog()

    # Given by the factory before the connection is made.
    stdout: Sink
    stderr: Sink
    events: StreamEvents
    tty: bool
    expect_pid: bool

    def __init__(self) -> None:
        super().__init__()
        self.exit_status: ExitStatus | None = None
        self.subprotocol = ""
        self._status = bytearray()
        self._input: IPushProducer | None = None
        self._stdin_closed = False
        self._failed: str | None = None
        self._ended = False
        #: The handshake succeeded with a channel protocol: the stream is handed over.
        self._opened = False
        self._feed_stdout: Sink | None = None

    # -- autobahn

    def onConnect(self, response: Any) -> None:
        self.subprotocol = response.protocol or ""

    def onOpen(self) -> None:
        if self.subprotocol not in SUBPROTOCOLS:
            self._failed = f"the server chose no channel protocol ({self.subprotocol or 'none'})"
            self._transport.abortConnection()
            return
        self._opened = True
        if self.expect_pid:
            reader = TerminalPidReader if self.tty else PidReader
            self._feed_stdout = reader(self._got_pid, self._after_pid).feed
        else:
            self._feed_stdout = self.stdout

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not payload or self._failed is not None:
            return
        channel, data = payload[0], payload[1:]
        if not data:
            return  # the server opens each channel with an empty message
        if channel == STDOUT and self._feed_stdout is not None:
            self._feed_stdout(data)
        elif channel == STDERR:
            if self.expect_pid:
                self._fail("output on stderr before the PID")
            else:
                self.stderr(data)
        elif channel == ERROR:
            self._status += data
            if len(self._status) > MAX_STATUS:
                self._fail("the status is too large")
        else:
            self._fail(f"a message on channel {channel}")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._input = None
        if not self._opened:
            # Never handed over (refused, cancelled, past its deadline): nobody
            # is told of its end. A refused upgrade (an HTTP error status)
            # leaves autobahn's is_open waiting forever; the opener waits on it.
            self._ended = True
            if not self.is_open.called:
                self.is_open.errback(StreamRefused(reason or "the handshake failed"))
            return
        if self._status and self.exit_status is None:
            self.exit_status = parse_status(bytes(self._status))
        error = self._failed
        if error is None and self.exit_status is None:
            error = reason or "the stream ended without an exit status"
        elif error is None and self.exit_status is not None:
            error = self.exit_status.error
        if self.expect_pid and self._failed is None:
            self.expect_pid = False
            self.events.pid_failed("the output ended before the PID")
        if not self._ended:
            self._ended = True
            self.events.output_ended(error)
            self.events.stream_closed()

    # -- PID handshake

    def _got_pid(self, pid: int) -> None:
        if not plausible_pid(pid):
            self._fail(f"the first bytes of the output are not a PID ({pid})")
            return
        self.expect_pid = False
        self._feed_stdout = self.stdout
        self.events.pid_received(pid)

    def _after_pid(self, data: bytes) -> None:
        if self._failed is None:
            self.stdout(data)

    def _fail(self, reason: str) -> None:
        """Stop forwarding output and drop the stream."""
        if self._failed is not None:
            return
        self._failed = reason
        if self.expect_pid:
            self.expect_pid = False
            self.events.pid_failed(reason)
        self.abortConnection()

    @property
    def _transport(self) -> Any:
        """The TCP or TLS transport: a producer and consumer that can abort."""
        return self.transport

    # -- stdin (ProgramTransport, InputGate)

    @property
    def can_close_stdin(self) -> bool:
        """Whether stdin can be closed on its own (``v5.channel.k8s.io``)."""
        return self.subprotocol == V5

    @property
    def _open(self) -> bool:
        return bool(self.state == WebSocketClientProtocol.STATE_OPEN)

    def write(self, data: bytes) -> None:
        """Send stdin; dropped once stdin or the stream is closed (as a closed socket does)."""
        if self._stdin_closed or not data or not self._open:
            return
        self.sendMessage(frame(STDIN, data), isBinary=True)

    def loseWriteConnection(self) -> None:
        """Close stdin; the output keeps flowing (under v4: only stop sending stdin)."""
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self.can_close_stdin and self._open:
            self.sendMessage(close_stdin_frame(), isBinary=True)

    def register_input(self, producer: IPushProducer) -> None:
        """Pause ``producer`` while more stdin waits to be sent than the socket buffers."""
        self._transport.registerProducer(producer, True)
        self._input = producer

    def release_input(self) -> None:
        producer, self._input = self._input, None
        if producer is None:
            return
        self._transport.unregisterProducer()
        producer.stopProducing()

    def resize(self, columns: int, rows: int) -> None:
        """Set the program's terminal size (channel 4).

        :raises KubernetesError: ``KUBERNETES_EXEC_RESIZE_FAILED`` once the stream is closed.
        """
        if not self._open:
            raise KubernetesError(
                messages.KUBERNETES_EXEC_RESIZE_FAILED, "the program's stream is closed"
            )
        self.sendMessage(resize_frame(columns, rows), isBinary=True)

    # -- output's producer

    def pauseProducing(self) -> None:
        """Stop reading the socket (what was already read is still delivered)."""
        if self.transport is not None:
            self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self.transport is not None:
            self._transport.resumeProducing()

    def stopProducing(self) -> None:
        self.abortConnection()

    def abortConnection(self) -> None:
        """Drop the stream at once."""
        if self.transport is not None:
            self._transport.abortConnection()


def tls_options(settings: ClusterSettings, hostname: str) -> Any:
    """Client TLS options as the control calls use them: the cluster's CA (or the
    system's trust), the client certificate, ``serverName``, TLS 1.2 at least.

    :raises KubernetesError: when the PEM material cannot be used.
    """
    try:
        trust = None
        pem = settings.pem
        if pem.ca:
            trust = ssl.trustRootFromCertificates(
                [
                    ssl.Certificate.loadPEM(c.public_bytes(Encoding.PEM))
                    for c in x509.load_pem_x509_certificates(pem.ca.encode("utf-8"))
                ]
            )
        client = None
        if pem.cert:
            client = ssl.PrivateCertificate.loadPEM(f"{pem.cert}\n{pem.key}")
        return ssl.optionsForClientTLS(
            settings.server_name or hostname,
            trustRoot=trust,
            clientCertificate=client,
            extraCertificateOptions={"raiseMinimumTo": _TLS_MINIMUM},
        )
    except Exception as e:  # pyOpenSSL and cryptography raise many kinds
        raise KubernetesError(
            messages.KUBERNETES_CONFIG_ERROR, f"unusable TLS settings for the API server: {e}"
        ) from None


def _endpoint(reactor: Any, settings: ClusterSettings) -> tuple[IStreamClientEndpoint, str]:
    """The endpoint of the API server and the WebSocket URL prefix (``ws[s]://host:port``)."""
    url = urlsplit(settings.base_url)
    hostname = url.hostname or ""
    port = url.port or (443 if settings.tls else 80)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, hostname, port, timeout=max(settings.timeout, 0.1)
    )
    if settings.tls:
        endpoint = wrapClientTLS(tls_options(settings, hostname), endpoint)
    scheme = "wss" if settings.tls else "ws"
    return endpoint, f"{scheme}://{url.netloc}{url.path}"


async def open_channel_stream(
    reactor: Any,
    settings: ClusterSettings,
    path: str,
    *,
    stdout: Sink,
    stderr: Sink,
    events: StreamEvents,
    tty: bool,
    expect_pid: bool = False,
    timeout: float | None = None,
) -> ChannelStream:
    """Open the exec or attach stream at ``path`` (from :func:`~.channels.exec_path`).

    Output may reach the sinks as soon as the handshake is done, before this
    returns. Cancelling drops the connection.

    :param timeout: seconds for the connection and the handshake (the HTTP
        timeout if None).
    :raises KubernetesError: ``KUBERNETES_EXEC_FAILED`` when the stream could
        not be opened in time (refused, wrong protocol, no answer).
    """
    endpoint, prefix = _endpoint(reactor, settings)
    headers = {}
    authorization = settings.credentials.authorization()
    if authorization:
        headers["Authorization"] = authorization
    factory = WebSocketClientFactory(
        prefix + path, protocols=list(SUBPROTOCOLS), headers=headers, reactor=reactor
    )
    factory.setProtocolOptions(
        maxFramePayloadSize=MAX_MESSAGE,
        maxMessagePayloadSize=MAX_MESSAGE,
        # The deadline below bounds the handshake on the reactor's clock.
        openHandshakeTimeout=0,
    )

    def build() -> ChannelStream:
        stream = ChannelStream()
        stream.factory = factory
        stream.stdout, stream.stderr, stream.events = stdout, stderr, events
        stream.tty, stream.expect_pid = tty, expect_pid
        return stream

    factory.protocol = cast(Any, build)
    limit = settings.timeout if timeout is None else timeout
    stream: ChannelStream | None = None

    async def connect() -> ChannelStream:
        nonlocal stream
        connected = cast(ChannelStream, await endpoint.connect(factory))
        stream = connected
        await connected.is_open
        return connected

    try:
        opened = await with_deadline(reactor, limit, connect())
    except DeadlineExceeded:
        _drop(stream)
        raise _exec_failed(f"no answer within {limit:g} s", path) from None
    except CancelledError:
        _drop(stream)
        raise
    except KubernetesError:
        raise
    except Exception as e:
        _drop(stream)
        raise _exec_failed(str(e) or type(e).__name__, path) from None
    if opened._failed is not None:
        raise _exec_failed(opened._failed, path)
    return opened


def _drop(stream: ChannelStream | None) -> None:
    if stream is not None:
        stream.abortConnection()


def _exec_failed(reason: str, path: str) -> KubernetesError:
    return KubernetesError(
        messages.KUBERNETES_EXEC_FAILED,
        f"the stream could not be opened: {reason}",
        path=path.split("?", 1)[0],
    )
