"""Sessions: the program behind one session channel.

A :class:`ContainerSession` drives one
:class:`~conch_container.interfaces.IBackendSession` for one
:class:`~conch_container.ssh.channel.SessionChannel`; the avatar creates both
when the client opens the channel. The channel decodes the client's requests
and calls the session's methods; nothing adapts the avatar to Conch's
:class:`~twisted.conch.interfaces.ISession`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from twisted.conch.ssh.connection import EXTENDED_DATA_STDERR
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.codes import Level
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError, RequestRejected
from conch_container.interfaces import ExitStatus, ProgramRequest, PtyRequest
from conch_container.log.logger import CodeLogger
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.ssh.channellimits import OneAtATime
from conch_container.ssh.forwarding import X11Request
from conch_container.ssh.requests import ProgramStartFailed, RequestRefused
from conch_container.ssh.sessionforwards import SessionForwards
from conch_container.ssh.sessionio import ChannelIO, StdinBuffer

if TYPE_CHECKING:
    from conch_container.ssh.channel import SessionChannel


class _State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"


class ContainerSession:
    """One channel's program in the backend.

    Requests arrive in SSH order; this object maps them onto the
    :class:`~conch_container.interfaces.IBackendSession` contract: environment
    and terminal before the start, one start, then stdin, resizes and
    signals while it runs, and one close when the channel goes away.

    :param avatar: the connection's :class:`~conch_container.ssh.avatar.ContainerAvatar`.
    :param backend: the backend session opened for this channel.
    :param metrics: counts this session among the active ones while its program runs.
    """

    def __init__(self, avatar: Any, backend: Any, metrics: Metrics = NULL_METRICS) -> None:
        self._avatar = avatar
        self._metrics = metrics
        self._counted = False
        self.log: CodeLogger = avatar.log
        self._channel: SessionChannel | None = None
        self._backend: Any = backend
        self._state = _State.NEW
        self._closed = False
        self._pty: PtyRequest | None = None
        self._pending_size: tuple[int, int, int, int] | None = None
        self._stdin: StdinBuffer | None = None
        self._io: ChannelIO | None = None
        self._early_eof = False
        self._forwards: SessionForwards | None = None
        # One backend call of each kind per channel (see channellimits).
        self._resizes: OneAtATime[tuple[int, int, int, int]] = OneAtATime(
            self._resize_running, replace_waiting=True
        )
        self._signals: OneAtATime[str] = OneAtATime(
            self._signal_running,
            replace_waiting=False,
            busy_reason="a signal is being delivered and another one is waiting",
        )

    def attach(self, channel: SessionChannel) -> None:
        """The channel is open: bind to it; the avatar's logout closes this session from now on."""
        self._channel = channel
        self.log = channel.log
        self._avatar.session_opened(self)

    def _require_backend(self) -> Any:
        if self._closed:
            raise RequestRefused("the session is not available")
        return self._backend

    def _before_start(self, what: str) -> Any:
        backend = self._require_backend()
        if self._state is not _State.NEW:
            raise RequestRefused(f"{what} after the program was started")
        return backend

    # Terminal and environment

    def request_pty(self, pty: PtyRequest) -> None:
        """Ask the backend for a terminal; TERM follows the terminal type."""
        backend = self._before_start("pty-req")
        try:
            backend.set_pty(pty)
        except ContainerSSHError as e:
            raise RequestRefused(e.explanation) from None
        self._pty = pty
        try:
            backend.set_env("TERM", pty.term)
        except ContainerSSHError as e:
            # The terminal is there; a policy that forbids setting TERM only
            # costs the program its terminal type.
            self.log.event(
                messages.SSH_CHANNEL_REQUEST_FAILED,
                "The terminal was set up, but TERM was not: {reason}",
                requestType="pty-req",
                reason=e.explanation,
                level=Level.DEBUG,
            )

    def forward_x11(self, request: X11Request) -> Deferred[bool]:
        """``x11-req``: a display in the container for the program (``DISPLAY``)."""
        self._before_start("x11-req")
        forwards = self._session_forwards()
        return forwards.tracked(Deferred.fromCoroutine(forwards.x11(request, self._set_own_env)))

    def forward_agent(self) -> Deferred[bool]:
        """``auth-agent-req@openssh.com``: the client's agent in the container
        (``SSH_AUTH_SOCK``)."""
        self._before_start("auth-agent-req@openssh.com")
        forwards = self._session_forwards()
        return forwards.tracked(Deferred.fromCoroutine(forwards.agent(self._set_own_env)))

    def _session_forwards(self) -> SessionForwards:
        if self._forwards is None:
            self._forwards = SessionForwards(self._avatar, self.log)
        return self._forwards

    def _set_own_env(self, name: str, value: str) -> None:
        """A variable the gateway sets for its own features, which the ``env``
        policy (about the client's variables) does not judge."""
        # The program may be starting already (waiting for this very setup).
        backend = self._require_backend()
        set_env = getattr(backend, "set_gateway_env", backend.set_env)
        try:
            set_env(name, value)
        except ContainerSSHError as e:
            raise RequestRefused(e.explanation) from None

    def set_env(self, name: str, value: str) -> None:
        """Pass an environment variable to the program."""
        backend = self._before_start("env")
        try:
            backend.set_env(name, value)
        except ContainerSSHError as e:
            raise RequestRefused(e.explanation) from None

    # Starting the program

    def run(self, kind: Any, command: str) -> Deferred[bool]:
        """Start a program (``shell``, ``exec`` or ``subsystem``); fires with True once it runs.

        The client's stdin is buffered from now on until the backend reports
        the program running. The returned Deferred fires (and so the
        client's reply goes out) before any of the program's output is
        delivered. Only one program runs per channel.
        """
        if self._stdin is not None:
            raise RequestRefused("program already running")
        backend = self._before_start(kind)
        assert self._channel is not None
        self._state = _State.STARTING
        stdin = self._stdin = StdinBuffer(self._channel, self.log)
        if self._early_eof:
            stdin.eof()
        io = self._io = ChannelIO(self._channel, self._program_exited, self._channel.audit)
        self._channel.attach_io(io)
        reply: Deferred[bool] = Deferred()
        program = ProgramRequest(kind, command)
        if self._forwards is not None and self._forwards.busy:
            # An x11-req or auth-agent-req comes without waiting for its reply
            # (OpenSSH sends the exec right after it): the program starts once
            # the display or socket it is to find in its environment is there.
            started = self._forwards.settled().addCallback(
                lambda _: maybeDeferred(backend.start, program, io)
            )
        else:
            started = maybeDeferred(backend.start, program, io)
        started.addCallbacks(
            self._started, self._start_failed, callbackArgs=(reply,), errbackArgs=(reply,)
        )
        return reply

    def _started(self, ignored: object, reply: Deferred[bool]) -> None:
        if self._closed:
            # The channel is gone; there is nobody to reply to.
            return
        assert self._stdin is not None and self._io is not None and self._channel is not None
        self._state = _State.RUNNING
        self._counted = True
        self._metrics.session_started()
        self._stdin.connect(self._backend)
        reply.callback(True)
        self._channel.after_reply(self._io.open)
        if self._pending_size is not None and self._state is _State.RUNNING:
            size, self._pending_size = self._pending_size, None
            # Nobody waits for this answer: the request was answered when it arrived.
            self._resizes.submit(size).addErrback(lambda _: None)

    def _start_failed(self, failure: Failure, reply: Deferred[bool]) -> None:
        self._state = _State.ENDED
        if self._io is not None:
            self._io.abandon()
        if self._stdin is not None:
            self._stdin.loseConnection()
        error = failure.value
        if isinstance(error, RequestRejected):
            # A policy refused the program (and logged why): a plain failure
            # reply, as OpenSSH answers a request it does not permit.
            if not self._closed and self._channel is not None:
                reply.errback(RequestRefused(error.explanation))
            return
        if isinstance(error, ContainerSSHError):
            error.log(self.log)
            user_message, reason = error.user_message, error.explanation
        else:
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Starting the program failed: {reason}",
                failure,
            )
            user_message, reason = GENERIC_USER_MESSAGE, failure.getErrorMessage()
        if self._closed or self._channel is None:
            return
        newline = "\r\n" if self._pty is not None else "\n"
        reply.errback(
            ProgramStartFailed(
                f"program start failed: {reason}", (user_message + newline).encode("utf-8")
            )
        )

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self._metrics.session_ended()

    def _program_exited(self, status: ExitStatus) -> None:
        self._state = _State.ENDED
        self._uncount()
        if self._stdin is not None:
            self._stdin.loseConnection()
        to_send: ExitStatus | None = status
        if status.signal is not None:
            self.log.event(
                messages.SSH_EXIT_SIGNAL,
                "Program terminated by signal {signal}",
                signal=status.signal,
                coreDumped=status.core_dumped,
            )
        elif status.code is not None and 0 <= status.code <= 0xFFFFFFFF:
            self.log.event(
                messages.SSH_EXIT, "Program exited with status {exitStatus}", exitStatus=status.code
            )
        else:
            self.log.event(
                messages.SSH_EXIT_CODE_FAILED,
                "The backend reported an unusable exit status {exitStatus}; none is sent",
                exitStatus=status.code,
            )
            to_send = None
        if self._channel is not None and not self._closed:
            self._channel.finish(to_send)

    # While it runs

    def resize(self, columns: int, rows: int, width: int, height: int) -> Deferred[bool] | bool:
        """The client's window changed.

        While the program runs, one resize at a time reaches the backend; of
        those that arrive meanwhile only the newest is applied next.
        """
        self._require_backend()
        if self._state is _State.RUNNING:
            return self._resizes.submit((columns, rows, width, height))
        if self._state is _State.ENDED or self._pty is None:
            raise RequestRefused("no program running")
        # Before (or during) the start: applied once the program runs.
        self._pending_size = (columns, rows, width, height)
        return True

    def _resize_running(self, size: tuple[int, int, int, int]) -> Deferred[bool]:
        if self._state is not _State.RUNNING:
            raise RequestRefused("no program running")
        d = maybeDeferred(self._backend.resize, *size)
        return d.addCallbacks(lambda _: True, _refusal)

    def signal(self, name: str) -> Deferred[bool]:
        """Deliver a signal (name without ``SIG``) to the program.

        One signal at a time reaches the backend, and one more may wait for
        it; a signal beyond that is refused.
        """
        self._require_backend()
        if self._state is not _State.RUNNING:
            raise RequestRefused("no program running")
        return self._signals.submit(name.removeprefix("SIG"))

    def _signal_running(self, name: str) -> Deferred[bool]:
        # A waiting signal starts later: the program may have ended, or the
        # channel closed, in between.
        backend = self._require_backend()
        if self._state is not _State.RUNNING:
            raise RequestRefused("no program running")
        d = maybeDeferred(backend.signal, name)
        return d.addCallbacks(lambda _: True, _refusal)

    @property
    def running(self) -> bool:
        """True while the channel's program runs."""
        return self._state is _State.RUNNING and not self._closed

    def tell_user(self, text: str) -> bool:
        """Write a notice from the gateway to the user: on the program's terminal,
        or on its stderr when it has none. False when no program runs."""
        channel = self._channel
        if channel is None or not self.running:
            return False
        data = text.encode("utf-8", "replace")
        if self._pty is not None:
            channel.write(data.replace(b"\n", b"\r\n"))
        else:
            channel.writeExtended(EXTENDED_DATA_STDERR, data)
        return True

    def write_stdin(self, data: bytes) -> None:
        """Client stdin for the program; dropped when no program was requested."""
        if self._stdin is not None:
            self._stdin.write(data)

    def eof_received(self) -> None:
        """The client will send no more stdin."""
        if self._stdin is None:
            self._early_eof = True
        else:
            self._stdin.eof()

    def close(self) -> None:
        """The channel or the connection is gone: end the backend session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._state = _State.ENDED
        if self._forwards is not None:
            self._forwards.close()
        self._uncount()
        self._resizes.discard()
        self._signals.discard()
        if self._io is not None:
            self._io.abandon()
        if self._stdin is not None:
            self._stdin.loseConnection()
        done = Deferred.fromCoroutine(self._close_backend())
        self._avatar.session_closing(self, done)

    async def _close_backend(self) -> None:
        try:
            await maybeDeferred(self._backend.close)
        except ContainerSSHError as e:
            e.log(self.log)
        except Exception:
            self.log.failure(
                messages.UNKNOWN_ERROR,
                "Closing the backend session failed: {reason}",
            )


def _refusal(failure: Failure) -> Failure:
    """A backend's refusal becomes the request's refusal; anything else stays an error."""
    error = failure.value
    if isinstance(error, ContainerSSHError):
        raise RequestRefused(error.explanation)
    return failure
