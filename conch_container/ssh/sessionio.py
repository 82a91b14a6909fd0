"""The two directions of a session's data between the SSH channel and the backend.

:class:`StdinBuffer` is the transport Conch's session protocol writes client
stdin to. It exists from the moment a program is requested (Conch needs a
transport synchronously) and holds stdin until the backend says the program
runs, then passes it straight through. It is also the producer of stdin the
backend pauses while it cannot take more: the channel then grants the client
no more window, so the client, not the gateway, holds what a slow program has
not read yet. Before the program runs the channel grants none either, so the
buffer never holds more than the window the client was given (Conch closes
the channel of a client that sends beyond it).

:class:`ChannelIO` is the :class:`~conch_container.interfaces.ISessionIO` the
backend writes program output to. Two things make it more than a pass-through:

- *the gate*: nothing reaches the client before the reply to the
  ``shell``/``exec``/``subsystem`` request has been sent; a fast program may
  print and exit while the backend is still reporting that it started, and a
  client that receives data, exit status and close before its reply is
  entitled to be confused (Conch's own client is);
- *flow control*: when the client's window is full, or the connection's
  socket does not drain (a client may announce a huge window and then stop
  reading), the backend's producer is paused until there is room again, so
  a large download never piles up in the gateway's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.internet.interfaces import IPushProducer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from conch_container import messages
from conch_container.audit.recorder import DISABLED_CHANNEL, STDERR, STDOUT, ChannelAudit
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ISessionIO
from conch_container.log.logger import CodeLogger


@implementer(ITransport, IPushProducer)
class StdinBuffer:
    """Client stdin on its way to the backend session.

    :param channel: the SSH channel: ``pause_input``/``resume_input`` withhold
        and grant the client's window; ``getPeer``/``getHost``.
    :param log: the channel's logger.
    """

    def __init__(self, channel: Any, log: CodeLogger) -> None:
        self._channel = channel
        self._log = log
        self._chunks: list[bytes] = []
        self._backend: Any = None
        self._backend_paused = False
        self._eof = False
        self._closed = False
        self._update_window()

    def write(self, data: bytes) -> None:
        """Client stdin: to the backend when it runs, into the buffer before."""
        if self._closed:
            return
        if self._backend is None:
            self._chunks.append(data)
            return
        try:
            self._backend.write(data)
        except Exception:
            self._failed(Failure())

    def writeSequence(self, data: Any) -> None:
        """Client stdin, in pieces."""
        for chunk in data:
            self.write(chunk)

    def eof(self) -> None:
        """The client sent EOF; the backend gets it after any buffered stdin."""
        if self._eof or self._closed:
            return
        self._eof = True
        if self._backend is not None:
            self._close_stdin()

    def connect(self, backend: Any) -> None:
        """The program runs: flush what was buffered (and a pending EOF), then pass through."""
        if self._closed:
            return
        self._backend = backend
        try:
            # Registered before the flush, so a flush the backend cannot
            # take at once already pauses the client.
            # Optional in the interface: without it, stdin flows unchecked.
            register = getattr(backend, "register_input_producer", None)
            if register is not None:
                register(self)
        except Exception:
            self._failed(Failure())
            return
        chunks, self._chunks = self._chunks, []
        if chunks:
            self.write(b"".join(chunks))
        if self._eof and not self._closed:
            self._close_stdin()
        self._update_window()

    # IPushProducer: the backend's side of stdin flow control.

    def pauseProducing(self) -> None:
        """The backend holds enough stdin: the client gets no more window."""
        self._backend_paused = True
        self._update_window()

    def resumeProducing(self) -> None:
        """The backend took what it held: the client may send again."""
        self._backend_paused = False
        self._update_window()

    def stopProducing(self) -> None:
        """The backend takes no more stdin: drop it from now on."""
        self.loseConnection()

    def _update_window(self) -> None:
        # Once stdin is dropped anyway, withholding window would only stall
        # a client whose input nobody reads.
        holding = not self._closed and (self._backend is None or self._backend_paused)
        if holding:
            self._channel.pause_input()
        else:
            self._channel.resume_input()

    def _close_stdin(self) -> None:
        try:
            self._backend.close_stdin()
        except Exception:
            self._failed(Failure())

    def _failed(self, failure: Failure) -> None:
        # The backend cannot take more input; output and exit still flow.
        self._closed = True
        self._chunks = []
        self._update_window()
        if isinstance(failure.value, ContainerSSHError):
            failure.value.log(self._log)
        else:
            self._log.failure(
                messages.UNKNOWN_ERROR,
                "Passing stdin to the backend failed: {reason}",
                failure,
            )

    def loseConnection(self) -> None:
        """The channel is going away (or the program's stdin is): drop stdin from now on."""
        if self._closed:
            return
        self._closed = True
        self._chunks = []
        self._update_window()

    def getPeer(self) -> Any:
        """The client's address."""
        return self._channel.getPeer()

    def getHost(self) -> Any:
        """The server's address."""
        return self._channel.getHost()


@implementer(ISessionIO)
class ChannelIO:
    """Program output on its way to the SSH channel.

    :param channel: the :class:`~conch_container.ssh.session.SessionChannel`.
    :param exited: called with the :class:`ExitStatus` once the program ended.
    :param audit: the channel's audit recorder; output is recorded as it
        arrives from the backend.
    """

    def __init__(
        self,
        channel: Any,
        exited: Callable[[ExitStatus], None],
        audit: ChannelAudit = DISABLED_CHANNEL,
    ) -> None:
        self._channel = channel
        self._on_exit = exited
        self._audit = audit
        self._open = False
        self._done = False
        self._pending: list[tuple[int, Any]] = []
        self._producer: Any = None
        self._producer_paused = False
        self._window_full = False
        self._transport_full = False
        self._audit_full = False

    # ISessionIO

    def stdout(self, data: bytes) -> None:
        """Program output for the client's stdout."""
        if not self._done:
            self._audit.io(STDOUT, data)
        self._stdout(data)

    def _stdout(self, data: bytes) -> None:
        if self._open:
            if not self._done:
                self._channel.write(data)
        elif not self._done:
            self._pending.append((0, data))

    def stderr(self, data: bytes) -> None:
        """Program output for the client's stderr."""
        if not self._done:
            self._audit.io(STDERR, data)
        self._stderr(data)

    def _stderr(self, data: bytes) -> None:
        if self._open:
            if not self._done:
                self._channel.writeExtended(EXTENDED_DATA_STDERR, data)
        elif not self._done:
            self._pending.append((1, data))

    def output_closed(self) -> None:
        """The program closed its output: EOF for the client (after buffered output)."""
        if self._open:
            if not self._done:
                self._channel.send_eof()
        elif not self._done:
            self._pending.append((2, None))

    def exited(self, status: ExitStatus) -> None:
        """The program ended; the channel closes once its output is delivered."""
        if self._done:
            return
        if not self._open:
            self._pending.append((3, status))
            return
        self._done = True
        self.unregister_producer()
        self._on_exit(status)

    def register_producer(self, producer: Any) -> None:
        """The backend's output stream, paused while the client cannot take more."""
        self._producer = producer
        self._producer_paused = False
        self._update_producer()

    def unregister_producer(self) -> None:
        """Forget the producer."""
        self._producer = None
        self._producer_paused = False

    # The SSH side

    def open(self) -> None:
        """The start reply went out: deliver what the program produced so far."""
        if self._open or self._done:
            return
        self._open = True
        pending, self._pending = self._pending, []
        for kind, value in pending:
            if kind == 0:
                self._stdout(value)
            elif kind == 1:
                self._stderr(value)
            elif kind == 2:
                self.output_closed()
            else:
                self.exited(value)
        self._update_producer()

    def abandon(self) -> None:
        """The channel is gone (or the start failed): drop everything from now on."""
        self._done = True
        self._pending = []
        self.unregister_producer()

    def window_full(self) -> None:
        """The client's window is exhausted (the channel buffers)."""
        self._window_full = True
        self._update_producer()

    def window_open(self) -> None:
        """The client made room in its window."""
        self._window_full = False
        self._update_producer()

    def transport_full(self) -> None:
        """The connection's socket does not drain: hold output back whatever the window."""
        self._transport_full = True
        self._update_producer()

    def transport_drained(self) -> None:
        """The connection's socket drained."""
        self._transport_full = False
        self._update_producer()

    def audit_full(self) -> None:
        """The audit log is behind: hold output back until it caught up."""
        self._audit_full = True
        self._update_producer()

    def audit_drained(self) -> None:
        """The audit log caught up."""
        self._audit_full = False
        self._update_producer()

    def _update_producer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        pause = self._window_full or self._transport_full or self._audit_full or not self._open
        if pause and not self._producer_paused:
            self._producer_paused = True
            producer.pauseProducing()
        elif not pause and self._producer_paused:
            self._producer_paused = False
            producer.resumeProducing()
