"""Exec and attach streams: a WebSocket to the API server, in the reactor.

:func:`~.streamopen.open_channel_stream` opens one, offering the
subprotocols ``v5.channel.k8s.io`` and ``v4.channel.k8s.io`` (the server
picks; an older server's v4 is the fallback). No thread is held: autobahn's
protocol runs on the reactor.

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
from typing import Any, Protocol

from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet.interfaces import IPushProducer
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
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.wstimers import cancel_close_timer

Sink = Callable[[bytes], Any]

#: The most one message may carry (the API server sends at most 32 KiB of output per message).
MAX_MESSAGE = 1024 * 1024
#: The most stdin sent in one message (as much as the API server sends of output in one).
MAX_STDIN_MESSAGE = 32 * 1024
#: The most stderr held while the guest agent's PID has not come on stdout.
MAX_EARLY_STDERR = 64 * 1024


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
        #: stderr that came before the PID, delivered once it came.
        self._early_stderr = bytearray()

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
                # stdout and stderr are copied apart (by the kubelet, by Docker): a
                # program that fails at once may be heard on stderr before the PID.
                self._early_stderr += data
                if len(self._early_stderr) > MAX_EARLY_STDERR:
                    self._fail("too much output on stderr before the PID")
            else:
                self.stderr(data)
        elif channel == ERROR:
            self._status += data
            if len(self._status) > MAX_STATUS:
                self._fail("the status is too large")
        # Anything else (stdin's or resize's channel, v5's close) has no
        # meaning from the server: ignored, as the official clients do.

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        cancel_close_timer(self)
        self._input = None
        if not self._opened:
            # Never handed over (refused, cancelled, past its deadline): nobody
            # is told of its end. A refused upgrade (an HTTP error status)
            # leaves autobahn's is_open waiting forever; the opener waits on it.
            self._ended = True
            if not self.is_open.called:
                self.is_open.errback(StreamRefused(reason or "the handshake failed"))
            return
        if self._status and self.exit_status is None and self._failed is None:
            self.exit_status = parse_status(bytes(self._status))
        error = self._failed
        if error is None and self.exit_status is None:
            error = reason or "the stream ended without an exit status"
        elif error is None and self.exit_status is not None:
            error = self.exit_status.error
        if self.expect_pid and self._failed is None:
            self.expect_pid = False
            self._flush_early_stderr()
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
        self._flush_early_stderr()

    def _flush_early_stderr(self) -> None:
        if self._early_stderr:
            held, self._early_stderr = bytes(self._early_stderr), bytearray()
            self.stderr(held)

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
        # Servers bound the size of a message (the test API server at 1 MiB):
        # bulk stdin goes as several.
        for start in range(0, len(data), MAX_STDIN_MESSAGE):
            self.sendMessage(frame(STDIN, data[start : start + MAX_STDIN_MESSAGE]), isBinary=True)

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
