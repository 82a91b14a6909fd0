"""X11 and agent forwarding: what a session channel asks for before its program starts.

``x11-req`` (``ssh -X``, ``ssh -Y``; RFC 4254, section 6.3) and OpenSSH's
``auth-agent-req@openssh.com`` (``ssh -A``) each make the forwarding helper
listen in the user's container: on an X11 display (TCP ``6000 + N`` on the
loopback, and ``/tmp/.X11-unix/XN`` when it can), or on a Unix socket only
the user can open. The program then finds it in its environment
(``DISPLAY=localhost:N.S``, ``SSH_AUTH_SOCK``); each connection to it
becomes an ``x11`` or ``auth-agent@openssh.com`` channel to the client. For
X11 the cookie the client sent (OpenSSH sends a stand-in and checks it on
the way back) is installed with ``xauth`` when the image has it. Both end
with the session.
"""

from __future__ import annotations

import secrets
import struct
from typing import Any

from twisted.conch.ssh.common import NS
from twisted.internet.defer import Deferred, DeferredList

from conch_container import messages
from conch_container.backend.forwardlisten import ListenRequest
from conch_container.backend.forwardprotocol import ConnectionType
from conch_container.deferreds import shield
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.ssh.forwardchannel import AgentChannel, ForwardedX11Channel
from conch_container.ssh.forwarding import ForwardTarget, X11Request
from conch_container.ssh.remoteforward import NO_LISTENING, open_accepted_channel
from conch_container.ssh.requests import RequestRefused

#: How long ``xauth`` may take.
XAUTH_TIMEOUT = 10.0


class SessionForwards:
    """A session channel's X11 display and agent socket.

    :param avatar: the connection's avatar (backend connection, log, SSH connection).
    :param log: the channel's logger.
    """

    def __init__(self, avatar: Any, log: Any) -> None:
        self._avatar = avatar
        self._log = log
        self._listeners: list[Any] = []
        self._x11 = False
        self._agent = False
        self._closed = False
        self._setting_up: set[Deferred[Any]] = set()

    @property
    def busy(self) -> bool:
        """Whether a display or socket is still being set up."""
        return bool(self._setting_up)

    def settled(self) -> Deferred[Any]:
        """Fires (never fails) once every setup under way has finished, either way."""
        return DeferredList([shield(d) for d in self._setting_up], consumeErrors=True)

    def tracked(self, setup: Deferred[bool]) -> Deferred[bool]:
        """Count ``setup`` as under way until it finishes."""
        self._setting_up.add(setup)

        def done(result: Any) -> Any:
            self._setting_up.discard(setup)
            return result

        return setup.addBoth(done)

    async def x11(self, request: X11Request, set_env: Any) -> bool:
        """Listen on a display; set ``DISPLAY`` through ``set_env``."""
        if self._x11:
            raise RequestRefused("X11 forwarding is set up already")
        self._x11 = True
        listen = ListenRequest(
            ConnectionType.X11,
            "localhost",
            single_connection=request.single_connection,
            screen=request.screen,
            auth_protocol=request.auth_protocol,
            auth_cookie=request.auth_cookie,
        )
        listener = await self._listen(listen, self._x11_connection)
        display = listener.bound_port
        await self._xauth(listener, display, request)
        set_env("DISPLAY", f"localhost:{display}.{request.screen}")
        self._log.event(
            messages.SSH_FORWARD_LISTEN,
            "The container's X11 display {display} forwards to the client",
            display=display,
            singleConnection=request.single_connection,
        )
        return True

    async def agent(self, set_env: Any) -> bool:
        """Listen on a socket for the client's agent; set ``SSH_AUTH_SOCK``."""
        if self._agent:
            raise RequestRefused("agent forwarding is set up already")
        self._agent = True
        # Unguessable, so no one else in the container can take the name first.
        path = f"/tmp/ssh-agent-{secrets.token_hex(8)}.sock"
        await self._listen(ListenRequest(ConnectionType.SSH_AGENT, path), self._agent_connection)
        set_env("SSH_AUTH_SOCK", path)
        self._log.event(
            messages.SSH_FORWARD_LISTEN,
            "The container's agent socket {bindHost} forwards to the client's agent",
            bindHost=path,
        )
        return True

    def close(self) -> None:
        """The session ended: its display and agent socket go."""
        self._closed = True
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            self._avatar.closing(listener.close())

    async def _listen(self, request: ListenRequest, on_connection: Any) -> Any:
        open_listener = getattr(self._avatar.backend_connection, "open_listener", None)
        if open_listener is None:
            raise RequestRefused(NO_LISTENING)
        try:
            listener = open_listener(request, on_connection)
        except RequestRejected as e:
            raise RequestRefused(e.explanation) from None  # the policy logged it
        except ContainerSSHError as e:
            e.log(self._log)
            raise RequestRefused(e.explanation) from None
        self._listeners.append(listener)
        try:
            await listener.start()
        except ContainerSSHError as e:
            e.log(self._log)
            raise RequestRefused(e.explanation) from None
        if self._closed:
            listener.close()
            raise RequestRefused("the session ended")
        return listener

    async def _xauth(self, listener: Any, display: int, request: X11Request) -> None:
        """Install the cookie for the display, if the image has ``xauth`` (as sshd does)."""
        command = (
            "command -v xauth >/dev/null 2>&1 || exit 0; "
            f"exec xauth -q add unix:{display}.{request.screen} "
            f"{request.auth_protocol} {request.auth_cookie}"
        )
        result = await listener.run_command(command, XAUTH_TIMEOUT)
        if result.status is None or result.status.code != 0:
            self._log.event(
                messages.SSH_FORWARD_FAILED,
                "Installing the X11 cookie with xauth failed: {reason}",
                reason=result.output.strip() or "xauth failed",
                display=display,
            )

    def _x11_connection(self, accepted: Any) -> None:
        origin = accepted.accepted
        target = ForwardTarget(
            f"X11 display {accepted.listener_port}",
            0,
            origin.originator_host,
            origin.originator_port,
        )
        payload = NS((origin.originator_host or "127.0.0.1").encode("utf-8")) + struct.pack(
            ">L", origin.originator_port
        )
        open_accepted_channel(self._avatar, ForwardedX11Channel, target, accepted, payload)

    def _agent_connection(self, accepted: Any) -> None:
        target = ForwardTarget("agent socket", 0, "", 0)
        open_accepted_channel(self._avatar, AgentChannel, target, accepted, b"")
