"""The ``session`` channel: the SSH side of one session.

A Conch :class:`~twisted.conch.ssh.channel.SSHChannel` that handles the
session requests itself, rather than Conch's ``SSHSession`` with an
:class:`~twisted.conch.interfaces.ISession` adapted from the avatar: Conch's
session answers ``shell`` and ``exec`` before the program runs, knows no
``signal``, and serves subsystems from the avatar (Conch's own SFTP server),
not from the backend.

This class logs every request with ContainerSSH's codes, decodes payloads
strictly, answers ``shell``/``exec``/``subsystem`` once the backend runs the
program (subsystems, SFTP included, run in the backend), keeps program
output in order (EOF and exit status only after buffered output), pauses
the backend while the client's window is full or the connection's socket does
not drain (:mod:`~conch_container.ssh.backpressure`), and grants the client
window for stdin only while the backend takes it. The program itself is
driven by the channel's :class:`~conch_container.ssh.session.ContainerSession`,
which the avatar creates with the channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.conch.ssh.channel import SSHChannel
from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.audit.recorder import (
    DISABLED_CHANNEL,
    STDIN,
    ChannelAudit,
    ConnectionAudit,
)
from conch_container.interfaces import ExitStatus, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.ssh.backpressure import TransportGate, transport_gate
from conch_container.ssh.forwarding import parse_x11_request
from conch_container.ssh.requests import (
    START_FAILED_EXIT_STATUS,
    PayloadError,
    ProgramStartFailed,
    RequestRefused,
    VariableRefused,
    exit_request,
    parse_env,
    parse_pty_req,
    parse_string,
    parse_window_change,
)
from conch_container.ssh.sessionio import ChannelIO

if TYPE_CHECKING:
    from conch_container.ssh.session import ContainerSession


class SessionChannel(SSHChannel):
    """A ``session`` channel.

    :param session: the session this channel's requests and data go to.
    :param channel_args: Conch's channel arguments (``remoteWindow``,
        ``remoteMaxPacket``, ``data``, ``avatar``).
    """

    name = b"session"
    #: Whether the channel carries a forwarded connection (audited under
    #: ``audit.intercept.forwarding`` rather than stdin/stdout/stderr).
    forwarded = False
    #: Whether the program's end is reported to the client (``exit-status`` or
    #: ``exit-signal``) before EOF and close.
    reports_exit = True
    log: CodeLogger
    #: Until the channel opens (tests may drive a channel that never does).
    audit: ChannelAudit = DISABLED_CHANNEL

    #: Whether the client's stdin is held back (see :attr:`localWindowSize`)
    #: because the backend cannot take more, and because the audit log is
    #: behind. Class defaults: Conch's constructor reads the window before ours runs.
    _input_paused = False
    _audit_paused = False
    _request_id = 0

    def __init__(self, session: ContainerSession, **channel_args: Any) -> None:
        super().__init__(**channel_args)
        self.session = session
        self._io: ChannelIO | None = None
        self._gate: TransportGate | None = None
        self._after_drain: list[Callable[[], None]] = []
        self._after_reply: list[Callable[[], None]] = []
        self._dispatching = False
        self._adding_window = False
        self._resume_after_flush = False
        self._eof_sent = False
        self._eof_hold: Any = None

    def channelOpen(self, specificData: bytes) -> None:
        """Log the channel and open its backend session."""
        avatar: Any = self.avatar
        self.log = avatar.log.bind(channelId=self.id)
        channel_type = self.name.decode("ascii")
        self.log.event(
            messages.SSH_NEW_CHANNEL, "New {channelType} channel", channelType=channel_type
        )
        connection_audit: ConnectionAudit = cast(Any, self.conn).transport.audit
        # Conch numbered the channel before opening it.
        assert self.id is not None
        self.audit = connection_audit.channel_opened(
            self.id, channel_type, self, forwarded=self.forwarded
        )
        try:
            self._gate = transport_gate(self.conn)
            self._gate.add(self)
            self.session.attach(self)
        except Exception:
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Opening the backend session failed: {reason}",
            )
            self.loseConnection()

    # Requests

    def requestReceived(self, requestType: bytes, data: bytes) -> Deferred[bool]:
        """Dispatch a channel request and log its outcome; never fails, answers true or false."""
        name = requestType.decode("ascii", "replace")
        self._dispatching = True
        self.log.event(
            messages.SSH_CHANNEL_REQUEST, "Channel request {requestType}", requestType=name
        )
        request_id = self.audit.next_request_id()
        method = _HANDLERS.get(requestType)
        if method is None:
            self.audit.unknown_request(request_id, name, data)
            self._request_failed(name, f"unsupported request type: {name}", request_id)
            return succeed(False)
        # The handlers record the request once decoded, under this id.
        self._request_id = request_id
        d = maybeDeferred(getattr(self, method), data)
        d.addCallbacks(
            self._request_done,
            self._request_error,
            callbackArgs=(name, request_id),
            errbackArgs=(name, request_id, data),
        )
        # Conch sends the reply when the Deferred we return fires. Once this
        # side has closed the channel a reply must not follow (and would hit
        # a channel Conch already forgot), so such a late answer is dropped.
        answer: Deferred[bool] = Deferred()

        def deliver(ok: bool) -> None:
            if not self.localClosed:
                answer.callback(ok)

        d.addCallback(deliver)
        return answer

    def request_dispatched(self) -> None:
        """The connection has handled the request (and sent its reply, if it was ready)."""
        self._dispatching = False
        pending, self._after_reply = self._after_reply, []
        for f in pending:
            f()

    def after_reply(self, f: Callable[[], None]) -> None:
        """Run ``f`` once the reply to the request being answered has been sent.

        A reply fired while the request is still being dispatched goes out
        only when the dispatch ends; anything that must follow the reply
        (the program's output, a close) waits until then.
        """
        if self._dispatching:
            self._after_reply.append(f)
        else:
            f()

    def _request_done(self, result: object, name: str, request_id: int) -> bool:
        if not result:
            self._request_failed(name, "request refused", request_id)
            return False
        self.log.event(
            messages.SSH_CHANNEL_REQUEST_SUCCESSFUL,
            "Channel request {requestType} done",
            requestType=name,
        )
        return True

    def _request_error(self, failure: Failure, name: str, request_id: int, data: bytes) -> bool:
        error = failure.value
        if isinstance(error, ProgramStartFailed):
            # OpenSSH gives up at once on a failed exec reply and never shows
            # what arrived on stderr before it. So the request succeeds, the
            # user reads why on stderr, and the exit status says it failed.
            self._request_failed(name, error.reason, request_id)
            message = error.user_message
            self.after_reply(lambda: self._report_start_failure(message))
            return True
        if isinstance(error, RequestRefused):
            self._request_failed(name, error.reason, request_id)
        elif isinstance(error, PayloadError):
            self.log.event(
                messages.SSH_DECODE_FAILED,
                "Cannot decode the {requestType} request: {reason}",
                requestType=name,
                reason=failure.getErrorMessage(),
            )
            self.audit.undecodable_request(request_id, name, data, failure.getErrorMessage())
            self._request_failed(name, "failed to unmarshal payload", request_id)
        else:
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Handling the {requestType} request failed: {reason}",
                failure,
                requestType=name,
            )
            self._request_failed(name, "internal error", request_id)
        return False

    def _request_failed(self, name: str, reason: str, request_id: int) -> None:
        self.audit.request_failed(request_id, reason)
        self.log.event(
            messages.SSH_CHANNEL_REQUEST_FAILED,
            "Channel request {requestType} failed: {reason}",
            requestType=name,
            reason=reason,
        )

    def request_pty_req(self, data: bytes) -> Any:
        """Ask the backend for a terminal."""
        term, columns, rows, width, height, modes = parse_pty_req(data)
        pty = PtyRequest(term, columns, rows, width, height, modes)
        self.audit.pty(self._request_id, pty)
        self.session.request_pty(pty)
        return True

    def request_env(self, data: bytes) -> Any:
        """Pass an environment variable (refused after the program started)."""
        try:
            name, value = parse_env(data)
        except VariableRefused as e:
            e.rejection.log(self.log)
            raise
        self.audit.setenv(self._request_id, name, value)
        self.session.set_env(name, value)
        return True

    def request_x11_req(self, data: bytes) -> Any:
        """X11 forwarding: a display in the container, answered once it listens."""
        return self.session.forward_x11(parse_x11_request(data))

    def request_auth_agent_req(self, data: bytes) -> Any:
        """Agent forwarding: a socket in the container, answered once it listens."""
        return self.session.forward_agent()

    def request_shell(self, data: bytes) -> Any:
        """Start the user's shell; answered once it runs."""
        self.audit.shell(self._request_id)
        return self.session.run("shell", "")

    def request_exec(self, data: bytes) -> Any:
        """Run a command; answered once it runs."""
        command = parse_string(data)
        self.audit.exec(self._request_id, command)
        return self.session.run("exec", command)

    def request_subsystem(self, data: bytes) -> Any:
        """Start a subsystem in the backend (SFTP included: never Conch's own server)."""
        subsystem = parse_string(data)
        self.audit.subsystem(self._request_id, subsystem)
        return self.session.run("subsystem", subsystem)

    def request_window_change(self, data: bytes) -> Any:
        """Resize the program's terminal."""
        columns, rows, width, height = parse_window_change(data)
        self.audit.window(self._request_id, columns, rows, width, height)
        return self.session.resize(columns, rows, width, height)

    def request_signal(self, data: bytes) -> Any:
        """Deliver a signal (RFC 4254, section 6.9) to the program."""
        signal = parse_string(data)
        self.audit.signal(self._request_id, signal)
        return self.session.signal(signal)

    # Data from the client

    def dataReceived(self, data: bytes) -> None:
        """Client stdin for the program; dropped when no program was requested."""
        self.audit.io(STDIN, data)
        self.session.write_stdin(data)

    def extReceived(self, dataType: int, data: bytes) -> None:
        """Extended data from the client has no meaning for a session; ignore it."""

    def eofReceived(self) -> None:
        """The client sent EOF: close the program's stdin."""
        self.audit.close_write()
        self.session.eof_received()

    def closeReceived(self) -> None:
        """The client closed the channel: output still buffered can never be delivered."""
        self.buf = b""
        self.extBuf = []
        self._after_drain = []
        super().closeReceived()

    def closed(self) -> None:
        """The channel is closed on both sides: end the backend session."""
        self._cancel_eof_hold()
        if self._gate is not None:
            self._gate.remove(self)
        if self._io is not None:
            self._io.abandon()
        self._after_drain = []
        self.audit.closed()
        self.session.close()

    # Stdin flow control

    @property
    def localWindowSize(self) -> int:
        """The window Conch tops the client up to; 0 while stdin is held back.

        Conch's connection grants a channel more window as each data packet
        arrives, once less than half of this is left. Reading 0 here while
        the backend cannot take more stdin withholds that grant, so the
        client can send no more than the window it already has.
        """
        return 0 if self._input_paused or self._audit_paused else self._window_size

    @localWindowSize.setter
    def localWindowSize(self, size: int) -> None:
        self._window_size = size

    def pause_input(self) -> None:
        """The backend cannot take more stdin: grant the client no more window."""
        self._input_paused = True

    def resume_input(self) -> None:
        """The backend takes stdin again: top the client's window up as Conch would."""
        if not self._input_paused:
            return
        self._input_paused = False
        self._top_up_window()

    def _top_up_window(self) -> None:
        if self._input_paused or self._audit_paused:
            return
        if self.conn is None or self.localClosed:
            return
        used = self._window_size - self.localWindowLeft
        if self.localWindowLeft < self._window_size // 2:
            self.conn.adjustWindow(self, used)

    # The audit log's pace

    def audit_paused(self) -> None:
        """The audit log is behind: hold the program's output and the client's stdin back."""
        self._audit_paused = True
        if self._io is not None:
            self._io.audit_full()

    def audit_resumed(self) -> None:
        """The audit log caught up."""
        self._audit_paused = False
        if self._io is not None:
            self._io.audit_drained()
        self._top_up_window()

    # Output to the client

    def attach_io(self, io: ChannelIO) -> None:
        """The output path of the program started on this channel."""
        self._io = io
        if self._gate is not None and self._gate.paused:
            io.transport_full()
        if self._audit_paused:
            io.audit_full()

    def transport_paused(self) -> None:
        """The connection's socket does not drain: hold the backend's output back."""
        if self._io is not None:
            self._io.transport_full()

    def transport_resumed(self) -> None:
        """The socket drained: the backend may write again (window permitting)."""
        if self._io is not None:
            self._io.transport_drained()

    def stopWriting(self) -> None:
        """The client's window is full: pause the backend's output."""
        if self._io is not None:
            self._io.window_full()

    def startWriting(self) -> None:
        """The client made room: resume the backend's output."""
        if self._adding_window:
            # Conch calls this before it flushes what it buffered; a producer
            # resumed now would write behind the buffer without ever being
            # paused again. Resume once the buffer is flushed.
            self._resume_after_flush = True
        elif self._io is not None:
            self._io.window_open()

    def addWindowBytes(self, data: int) -> None:
        """More window: flush buffered output, resume the backend, then what waited."""
        self._adding_window = True
        try:
            super().addWindowBytes(data)
        finally:
            self._adding_window = False
        if self._resume_after_flush:
            self._resume_after_flush = False
            if self.areWriting and self._io is not None:
                self._io.window_open()
        self._run_after_drain()

    def _drained(self) -> bool:
        return not self.buf and not self.extBuf

    def _when_drained(self, f: Callable[[], None]) -> None:
        self._after_drain.append(f)
        self._run_after_drain()

    def _run_after_drain(self) -> None:
        while self._after_drain and self._drained():
            self._after_drain.pop(0)()

    def _report_start_failure(self, message: bytes) -> None:
        self.writeExtended(EXTENDED_DATA_STDERR, message)
        self.finish(ExitStatus(code=START_FAILED_EXIT_STATUS))

    def send_eof(self) -> None:
        """Send EOF once everything written before it has been delivered, and the
        exit status first if it comes within :data:`EOF_HOLD_SECONDS`.

        OpenSSH's sshd sends the exit status before EOF as a rule, and a client
        that closes a channel as soon as both sides sent EOF (an OpenSSH
        ControlMaster does, for its multiplexed sessions) never sees a status
        that comes after: ``ssh -S`` then exits with 255.
        """
        self.after_reply(lambda: self._when_drained(self._hold_eof))

    def _hold_eof(self) -> None:
        if self._eof_sent or self._eof_hold is not None or self.conn is None:
            return
        clock = getattr(self.conn.transport, "clock", None)
        if clock is None:
            self._send_eof_now()
            return
        self._eof_hold = clock.callLater(EOF_HOLD_SECONDS, self._eof_hold_expired)

    def _eof_hold_expired(self) -> None:
        # The program closed its output but runs on: EOF now, the status later.
        self._eof_hold = None
        self._send_eof_now()

    def _cancel_eof_hold(self) -> None:
        if self._eof_hold is not None:
            if self._eof_hold.active():
                self._eof_hold.cancel()
            self._eof_hold = None

    def _send_eof_now(self) -> None:
        if not self._eof_sent and self.conn is not None:
            self._eof_sent = True
            self.conn.sendEOF(self)

    def finish(self, status: ExitStatus | None) -> None:
        """After the output: the exit status (if known), EOF, and close.

        All of it waits for the reply to a request being answered (a signal
        can end the program before its own reply is sent) and for buffered
        output to be delivered.
        """

        def done() -> None:
            self._cancel_eof_hold()
            if status is not None and self.reports_exit and self.conn is not None:
                self.audit.exited(status)
                request, payload = exit_request(status)
                self.conn.sendRequest(self, request, payload)
            self._send_eof_now()
            self.loseConnection()

        self.after_reply(lambda: self._when_drained(done))


#: How long EOF waits, once the program's output closed, for its exit status
#: to go first (see :meth:`SessionChannel.send_eof`). The Docker backend
#: learns the status a few milliseconds after the output ends.
EOF_HOLD_SECONDS = 0.5


#: The requests a session channel serves, and their handlers. Anything else
#: (agent forwarding, X11, ...) is refused as unsupported; the handlers are
#: looked up in this table only, never by building a name from client input.
_HANDLERS: dict[bytes, str] = {
    b"x11-req": "request_x11_req",
    b"auth-agent-req@openssh.com": "request_auth_agent_req",
    b"pty-req": "request_pty_req",
    b"env": "request_env",
    b"shell": "request_shell",
    b"exec": "request_exec",
    b"subsystem": "request_subsystem",
    b"window-change": "request_window_change",
    b"signal": "request_signal",
}
