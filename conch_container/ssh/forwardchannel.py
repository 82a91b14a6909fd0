"""A ``direct-tcpip`` channel: a connection dialled from the user's container.

It is a session channel that runs one program of its own choosing, the
moment it opens: the backend's dialler (its ``open_forward``; the
forwarding helper, or the ``nc``/``socat`` command of
:func:`~conch_container.ssh.forwarding.dial_command`). It takes no
requests. The window handling, the hold-back while the client's socket or
the audit log is behind, and the pausing of the program's output and the
client's input all work as for a session. When the program ends (the far
side closed) the channel sends EOF and closes without an exit status, which
a forwarded connection has no place for; when the client closes the
channel, the program is stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.ssh.channel import SessionChannel
from conch_container.ssh.forwarding import ForwardTarget, dial_command

if TYPE_CHECKING:
    from conch_container.ssh.session import ContainerSession

#: Bytes of the dialler's stderr put in one log event.
_MAX_REPORT = 512
#: Log events one forwarded connection's dialler may cause; a dialler that
#: writes to stderr without end would otherwise flood the log.
_MAX_REPORTS = 8


class DirectTcpipChannel(SessionChannel):
    """``ssh -L`` and ``ssh -D``: one forwarded connection.

    :param session: the session that runs the dialler in the container.
    :param target: the host and port to dial, and the client's originator.
    """

    name = b"direct-tcpip"
    forwarded = True
    #: A forwarded connection has no exit status to send: when the dialler ends
    #: (the far side closed), the channel gets EOF after the output, then closes.
    reports_exit = False

    def __init__(self, session: ContainerSession, target: ForwardTarget, **channel_args: Any):
        super().__init__(session, **channel_args)
        self.target = target
        self._reports = 0

    def channelOpen(self, specificData: bytes) -> None:
        super().channelOpen(specificData)
        if self.localClosed:
            return
        target = self.target
        self._announce()
        started = maybeDeferred(self.session.run, "exec", dial_command(target.host, target.port))
        started.addErrback(self._dial_failed)

    def _announce(self) -> None:
        target = self.target
        self.log.event(
            messages.SSH_FORWARD_DIAL,
            "Forwarding a connection from {originator} to {host}:{port} in the container",
            host=target.host,
            port=target.port,
            originator=f"{target.originator_host}:{target.originator_port}",
        )

    def _dial_failed(self, failure: Failure) -> None:
        self.log.event(
            messages.SSH_FORWARD_FAILED,
            "Forwarding to {host}:{port} failed: {reason}",
            host=self.target.host,
            port=self.target.port,
            reason=failure.getErrorMessage(),
        )
        self.loseConnection()

    def writeExtended(self, dataType: int, data: bytes) -> None:
        """The dialler's stderr (why it could not connect) goes to the log, not the
        client: a forwarded connection has no stderr, and OpenSSH drops it.
        Only the first few pieces are logged."""
        self._reports += 1
        if self._reports > _MAX_REPORTS:
            return
        self.log.event(
            messages.SSH_FORWARD_FAILED,
            "The dialler for {host}:{port} reports: {report}",
            host=self.target.host,
            port=self.target.port,
            report=data[:_MAX_REPORT].decode("utf-8", "replace").strip(),
        )

    def requestReceived(self, requestType: bytes, data: bytes) -> Deferred[bool]:
        """A forwarded connection takes no requests (RFC 4254 defines none for it)."""
        self.log.event(
            messages.SSH_CHANNEL_REQUEST_FAILED,
            "Refusing a {requestType} request on a forwarded connection",
            requestType=requestType.decode("ascii", "replace"),
            reason="forwarded connections take no requests",
        )
        return succeed(False)


class ForwardedTcpipChannel(DirectTcpipChannel):
    """``ssh -R``: a connection the container accepted, opened towards the client.

    :param session: the session whose backend is the accepted connection
        (a :class:`~conch_container.backend.forwardlisten.ListenedConnection`).
    :param target: the listening address and port as the client asked for
        them, and the originator in the container.
    :param accepted: the same backend session, told when the client refuses.
    """

    name = b"forwarded-tcpip"

    def __init__(
        self,
        session: ContainerSession,
        target: ForwardTarget,
        accepted: Any,
        **channel_args: Any,
    ):
        super().__init__(session, target, **channel_args)
        self._accepted = accepted

    def _announce(self) -> None:
        target = self.target
        self.log.event(
            messages.SSH_FORWARD_ACCEPT,
            "Forwarding a connection from {originator} in the container to the client's "
            "{host}:{port} forward",
            host=target.host,
            port=target.port,
            originator=f"{target.originator_host}:{target.originator_port}",
        )

    def openFailed(self, reason: Any) -> None:
        """The client refused the channel: the container's side is closed."""
        self.log = cast(Any, self.avatar).log
        self.log.event(
            messages.SSH_FORWARD_FAILED,
            "The client refused a forwarded connection for {host}:{port}: {reason}",
            host=self.target.host,
            port=self.target.port,
            reason=str(reason),
        )
        self._accepted.refuse()


class DirectStreamlocalChannel(DirectTcpipChannel):
    """``ssh -L port:/path``: one connection to a Unix socket in the container
    (``target.host`` is the socket's path)."""

    name = b"direct-streamlocal@openssh.com"


class ForwardedStreamlocalChannel(ForwardedTcpipChannel):
    """``ssh -R /path:...``: a connection the container accepted on a Unix socket."""

    name = b"forwarded-streamlocal@openssh.com"


class ForwardedX11Channel(ForwardedTcpipChannel):
    """``ssh -X``: a connection to the X11 display of a session, towards the client's
    X server (``target.host`` names the display)."""

    name = b"x11"


class AgentChannel(ForwardedTcpipChannel):
    """``ssh -A``: a connection to a session's agent socket, towards the client's agent
    (``target.host`` is the socket's path)."""

    name = b"auth-agent@openssh.com"
