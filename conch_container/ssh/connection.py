"""The ``ssh-connection`` service: channels, global requests and keepalives."""

from __future__ import annotations

import struct
from typing import Any, cast

from twisted.conch.error import ConchError
from twisted.conch.ssh import connection
from twisted.conch.ssh.common import NS
from twisted.conch.ssh.transport import (
    DISCONNECT_BY_APPLICATION,
    DISCONNECT_CONNECTION_LOST,
    DISCONNECT_PROTOCOL_ERROR,
)
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.python.compat import networkString

from conch_container import messages
from conch_container.config import SSHConfig
from conch_container.ssh.keepalive import KeepAlive
from conch_container.ssh.pendingrequests import PendingRequests
from conch_container.ssh.requests import EnvBudget, EnvLimitReached, PayloadError, PayloadReader
from conch_container.ssh.timeouts import ConnectionTimeouts

#: The largest window RFC 4254 allows a channel to have (section 5.2).
MAX_WINDOW = 2**32 - 1
#: Global requests a client may have waiting for an answer at once (OpenSSH
#: sends one ``tcpip-forward`` per ``-R`` at login).
MAX_PENDING_GLOBAL = 64


class ServerConnection(connection.SSHConnection):
    """Conch's connection service, with the gateway's channel policy and keepalives.

    - a channel type the avatar does not serve is refused with
      ``OPEN_UNKNOWN_CHANNEL_TYPE`` and ``"unsupported channel type"``
      (ContainerSSH's answer), logged without a traceback;
    - while the gateway shuts down no new channel is opened;
    - keepalive requests go out every ``ssh.clientAliveInterval`` once the
      user is logged in (this service only starts after authentication);
    - the connection's ``session`` time limits are enforced, every data
      packet in either direction counting as activity
      (:mod:`~conch_container.ssh.timeouts`);
    - channel requests are answered in the order they arrived on each
      channel, and a client with more than ``ssh.maxPendingRequests``
      unanswered is disconnected (``SSH_CHANNEL_REQUESTS_FLOOD``);
    - at most ``ssh.maxChannels`` channels are open at once, and the ``env``
      requests of each are bounded by ``ssh.maxEnvVariables`` and
      ``ssh.maxEnvSize``;
    - a client's window and packet size are honoured only up to
      ``ssh.maxWindowSize`` and ``ssh.maxPacketSize``: the rest of a larger
      window is remembered, not used, so that a window adjust that takes the
      client's window past 2^32-1 is still caught as the protocol error it is.

    :param limits: the ``ssh`` settings the limits and keepalives come from.
    """

    transport: Any
    _keepalive: KeepAlive | None = None
    _timeouts: ConnectionTimeouts | None = None
    _looked_up: Any = None
    _pending: PendingRequests | None = None
    _flooded = False
    _unused_window: dict[int, int] | None = None
    _env_budgets: dict[int, EnvBudget] | None = None

    def __init__(self, limits: SSHConfig) -> None:
        super().__init__()
        self.limits = limits
        #: Replies to global requests, in request order; each holds its result once known.
        self._global_replies: list[list[Any]] = []

    def serviceStarted(self) -> None:
        """The user logged in: start keepalives if configured."""
        super().serviceStarted()
        interval = self.limits.client_alive_interval
        if interval > 0:
            self._keepalive = KeepAlive(
                self.transport.clock,
                interval,
                self.limits.client_alive_count_max,
                self._send_keepalive,
                self._client_dead,
                self.transport.log,
            )
            self._keepalive.start()
        self._start_timeouts()

    def _start_timeouts(self) -> None:
        """Enforce the connection's ``session`` time limits, if it has any."""
        avatar: Any = getattr(self.transport, "avatar", None)
        config = getattr(avatar, "session_config", None)
        if avatar is None or config is None:
            return
        timeouts = ConnectionTimeouts(self.transport.clock, config, avatar, self.transport.log)
        if not timeouts.active:
            return
        avatar.disconnect = lambda text: self.transport.disconnect(DISCONNECT_BY_APPLICATION, text)
        self._timeouts = timeouts
        timeouts.start()

    def serviceStopped(self) -> None:
        """Stop keepalives and time limits, then close every channel (Conch)."""
        if self._keepalive is not None:
            self._keepalive.stop()
        if self._timeouts is not None:
            self._timeouts.stop()
        super().serviceStopped()

    # Data in either direction is activity for the idle timeout.

    def ssh_CHANNEL_DATA(self, packet: bytes) -> None:
        if self._timeouts is not None:
            self._timeouts.touch()
        super().ssh_CHANNEL_DATA(packet)

    def ssh_CHANNEL_EXTENDED_DATA(self, packet: bytes) -> None:
        if self._timeouts is not None:
            self._timeouts.touch()
        super().ssh_CHANNEL_EXTENDED_DATA(packet)

    def sendData(self, channel: Any, data: bytes) -> None:
        if self._timeouts is not None:
            self._timeouts.touch()
        super().sendData(channel, data)

    def sendExtendedData(self, channel: Any, dataType: int, data: bytes) -> None:
        if self._timeouts is not None:
            self._timeouts.touch()
        super().sendExtendedData(channel, dataType, data)

    def _send_keepalive(self) -> Deferred[Any]:
        d: Deferred[Any] = self.sendGlobalRequest(b"keepalive@openssh.com", b"", wantReply=True)
        return d

    def _client_dead(self) -> None:
        self.transport.log.event(
            messages.SSH_KEEPALIVE_NORESP,
            "Client stopped answering keepalive requests; disconnecting",
            level=messages.SSH_DISCONNECTED.level,
        )
        self.transport.abort(DISCONNECT_CONNECTION_LOST, "keepalive timeout")

    def ssh_GLOBAL_REQUEST(self, packet: bytes) -> None:
        """Hand a global request to the avatar; replies go out in request order.

        A request may be answered later (``tcpip-forward`` waits for the
        container to listen): a client matches replies to requests by their
        order, so a quick answer waits for the slower ones before it. At most
        :data:`MAX_PENDING_GLOBAL` wait at once; a client with more is
        disconnected. Conch's handler fails with an exception on a request
        without its want-reply flag; here that is a protocol error.
        """
        try:
            reader = PayloadReader(packet)
            request_type = reader.string()
            rest = reader.rest()
            if not rest:
                raise PayloadError("no want-reply flag")
        except PayloadError:
            self._protocol_error("Cannot decode a global request", b"malformed global request")
            return
        self.transport.audit.global_request(request_type.decode("ascii", "replace"))
        want_reply = rest[0] != 0
        if want_reply and len(self._global_replies) >= MAX_PENDING_GLOBAL:
            self._protocol_error(
                "Too many global requests are waiting for an answer",
                b"too many global requests",
            )
            return
        answer = maybeDeferred(self.gotGlobalRequest, request_type, rest[1:])
        if not want_reply:
            answer.addErrback(lambda _: None)
            return
        slot: list[Any] = []
        self._global_replies.append(slot)

        def answered(result: Any) -> None:
            slot.append(result)
            self._send_global_replies()

        answer.addCallbacks(answered, lambda _: answered(0))

    def _send_global_replies(self) -> None:
        replies = self._global_replies
        while replies and replies[0]:
            (result,) = replies.pop(0)
            if self.transport is None or getattr(self.transport, "disconnected", False):
                continue
            if not result:
                self.transport.sendPacket(connection.MSG_REQUEST_FAILURE, b"")
            else:
                data = result[1] if isinstance(result, tuple | list) else b""
                self.transport.sendPacket(connection.MSG_REQUEST_SUCCESS, data)

    def open_forwarded_channel(self, channel: Any, extra: bytes) -> None:
        """Open a channel to the client (``forwarded-tcpip``) with the gateway's window."""
        channel.localWindowSize = channel.localWindowLeft = self.limits.receive_window_size
        self.openChannel(channel, extra)

    def ssh_REQUEST_SUCCESS(self, packet: bytes) -> None:
        """The answer to our oldest global request (a keepalive); unasked for, an error."""
        if self._expects_global_reply():
            super().ssh_REQUEST_SUCCESS(packet)

    def ssh_REQUEST_FAILURE(self, packet: bytes) -> None:
        """The answer to our oldest global request (a keepalive); unasked for, an error."""
        if self._expects_global_reply():
            super().ssh_REQUEST_FAILURE(packet)

    def _expects_global_reply(self) -> bool:
        # Conch pops the oldest waiting request without looking, and an
        # unexpected reply would end the connection with a traceback.
        if self.deferreds.get("global"):
            return True
        self._protocol_error(
            "The client answered a global request the server did not send",
            b"unexpected global request reply",
        )
        return False

    def ssh_CHANNEL_OPEN(self, packet: bytes) -> None:
        """Refuse channel types we do not serve (and all channels during shutdown)."""
        try:
            reader = PayloadReader(packet)
            channel_type = reader.string()
            sender_channel = reader.uint32()
        except PayloadError:
            self.transport.log.event(
                messages.SSH_DECODE_FAILED, "Cannot decode a channel open request"
            )
            self.transport.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"malformed channel open")
            return
        avatar = self.transport.avatar
        name = channel_type.decode("ascii", "replace")
        self.transport.audit.new_channel(name)
        if channel_type not in avatar.channelLookup:
            log = self.transport.log
            log.event(
                messages.SSH_UNSUPPORTED_CHANNEL_TYPE,
                "Unsupported channel type {channelType}",
                channelType=name,
            )
            log.event(
                messages.SSH_NEW_CHANNEL_REJECTED,
                "Rejected new channel of type {channelType}: {reason}",
                channelType=name,
                reason="unsupported channel type",
            )
            self._refuse(
                sender_channel,
                connection.OPEN_UNKNOWN_CHANNEL_TYPE,
                "unsupported channel type",
                name,
            )
            return
        if not avatar.accepting_channels:
            self.transport.log.event(
                messages.SSH_NEW_CHANNEL_REJECTED,
                "Rejected new channel of type {channelType}: {reason}",
                channelType=name,
                reason="the server is shutting down",
            )
            self._refuse(
                sender_channel,
                connection.OPEN_ADMINISTRATIVELY_PROHIBITED,
                "the server is shutting down",
                name,
            )
            return
        # Forwarded connections have their own cap, in the security policy
        # (security.forwarding.maxConnections), as OpenSSH limits sessions only.
        if channel_type != b"direct-tcpip" and self._unforwarded() >= self.limits.max_channels:
            self._refuse_channel_limit(sender_channel, name)
            return
        # Look the channel up here rather than inside Conch's handler: Conch
        # logs every refusal (a ConchError from lookupChannel) as a critical
        # failure with a traceback, while a refused session (a session limit,
        # a backend that cannot open one) is an ordinary, already logged event.
        try:
            window, max_packet = reader.uint32(), reader.uint32()
            honoured_window, honoured_packet = self._honoured_sizes(name, window, max_packet)
            self._looked_up = super().getChannel(
                channel_type, honoured_window, honoured_packet, reader.rest()
            )
        except PayloadError:
            self.transport.log.event(
                messages.SSH_DECODE_FAILED, "Cannot decode a channel open request"
            )
            self.transport.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"malformed channel open")
            return
        except ConchError as refusal:
            description, reason = refusal.args
            if isinstance(description, int):  # Conch accepts both orders (its #3657)
                description, reason = reason, description
            self._refuse(sender_channel, reason, str(description), name)
            return
        channel = cast(Any, self._looked_up)  # set by the lookup just above
        # Conch's 128 KiB default makes the client wait for a window adjust
        # every 64 KiB: the window the open confirmation announces is ours.
        channel.localWindowSize = channel.localWindowLeft = self.limits.receive_window_size
        super().ssh_CHANNEL_OPEN(packet)
        local = channel.id  # None when Conch refused the channel after all
        if local is not None and self.channels.get(local) is channel:
            self._windows()[local] = window - honoured_window

    def _unforwarded(self) -> int:
        """The open channels that are not forwarded connections."""
        return sum(1 for c in self.channels.values() if not getattr(c, "forwarded", False))

    def _refuse_channel_limit(self, sender_channel: int, name: str) -> None:
        log = self.transport.log
        log.event(
            messages.SSH_CHANNEL_LIMIT,
            "Refusing a {channelType} channel: {openChannels} channels open (at most "
            "{maxChannels})",
            channelType=name,
            openChannels=self._unforwarded(),
            maxChannels=self.limits.max_channels,
        )
        log.event(
            messages.SSH_NEW_CHANNEL_REJECTED,
            "Rejected new channel of type {channelType}: {reason}",
            channelType=name,
            reason="too many channels",
        )
        self._refuse(sender_channel, connection.OPEN_RESOURCE_SHORTAGE, "too many channels", name)

    def _honoured_sizes(self, name: str, window: int, max_packet: int) -> tuple[int, int]:
        """The window and packet size the gateway uses for what the client announced.

        A larger window would let the gateway send (and its backend produce)
        that much more ahead of the client; a larger packet size, send it in
        one piece. A packet size of 0 is honoured as 1: the client can then
        receive hardly anything, but Conch cannot split output into
        packets of no size at all.
        """
        limits = self.limits
        honoured_window = min(window, limits.max_window_size)
        honoured_packet = max(1, min(max_packet, limits.max_packet_size))
        if (honoured_window, honoured_packet) != (window, max_packet):
            self.transport.log.event(
                messages.SSH_WINDOW_CLAMPED,
                "The client announced a window of {window} and packets of {maxPacket} bytes "
                "for a {channelType} channel; using {honouredWindow} and {honouredPacket}",
                channelType=name,
                window=window,
                maxPacket=max_packet,
                honouredWindow=honoured_window,
                honouredPacket=honoured_packet,
            )
        return honoured_window, honoured_packet

    def _windows(self) -> dict[int, int]:
        """Per channel: how much of the client's window the gateway leaves unused."""
        if self._unused_window is None:
            self._unused_window = {}
        return self._unused_window

    def ssh_CHANNEL_WINDOW_ADJUST(self, packet: bytes) -> None:
        """Add to a channel's window, up to ``ssh.maxWindowSize``; past 2^32-1 is an error.

        The client's own count of its window goes on including what the
        gateway left unused, so that part is added first: only what takes the
        window above the cap is left unused.
        """
        try:
            reader = PayloadReader(packet)
            local, increment = reader.uint32(), reader.uint32()
        except PayloadError:
            self._protocol_error("Cannot decode a window adjust", b"malformed window adjust")
            return
        channel = self.channels.get(local)
        if channel is None:
            self._protocol_error("A window adjust names no open channel", b"unknown channel")
            return
        # Data still on its way has left this count but not yet the client's,
        # so this is never more than the client's own count: a client within
        # the RFC's bound is never taken for one beyond it.
        unused = self._windows().get(local, 0)
        client_window = channel.remoteWindowLeft + unused + increment
        if client_window > MAX_WINDOW:
            self._window_overflow(local, client_window)
            return
        honoured = min(client_window, self.limits.max_window_size)
        self._windows()[local] = client_window - honoured
        added = honoured - channel.remoteWindowLeft
        if added > 0:
            channel.addWindowBytes(added)

    def _window_overflow(self, local: int, client_window: int) -> None:
        self.transport.log.event(
            messages.SSH_WINDOW_OVERFLOW,
            "The client's window on channel {channelId} would be {window} bytes, more than "
            "2^32-1; disconnecting",
            channelId=local,
            window=client_window,
        )
        self.transport.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, b"window adjust overflow")

    def getChannel(self, channelType: bytes, windowSize: int, maxPacket: int, data: bytes) -> Any:
        """The channel :meth:`ssh_CHANNEL_OPEN` already looked up for this open."""
        channel, self._looked_up = self._looked_up, None
        if channel is None:
            return super().getChannel(channelType, windowSize, maxPacket, data)
        return channel

    @property
    def pending_requests(self) -> PendingRequests:
        """This connection's unanswered channel requests."""
        if self._pending is None:
            self._pending = PendingRequests(self.limits.max_pending_requests, self._send_reply)
        return self._pending

    def _env_budget(self, local: int) -> EnvBudget:
        if self._env_budgets is None:
            self._env_budgets = {}
        budget = self._env_budgets.get(local)
        if budget is None:
            limits = self.limits
            budget = EnvBudget(limits.max_env_variables, limits.max_env_size)
            self._env_budgets[local] = budget
        return budget

    def _dispatch(self, channel: Any, request_type: bytes, data: bytes) -> Deferred[bool]:
        """The channel's answer to a request, unless the request is beyond a limit.

        ``env`` requests are charged here, before the channel decodes them, so
        that one beyond the channel's budget reaches neither a policy nor
        the backend.
        """
        if request_type == b"env":
            try:
                self._env_budget(channel.id).charge(data)
            except EnvLimitReached as refusal:
                self._log_env_limit(channel, refusal)
                return fail(refusal)
        return maybeDeferred(channel.requestReceived, request_type, data)

    def _log_env_limit(self, channel: Any, refusal: EnvLimitReached) -> None:
        budget = self._env_budget(channel.id)
        self.transport.log.event(
            messages.SSH_ENV_LIMIT,
            "Refusing an environment variable on channel {channelId}: {reason}",
            channelId=channel.id,
            reason=refusal.reason,
            variables=budget.variables,
            size=budget.size,
        )

    def ssh_CHANNEL_REQUEST(self, packet: bytes) -> None:
        """Dispatch a channel request; its reply goes out in order, within the connection's bound.

        Conch's own handler replies whenever each handler's answer is ready,
        so a quick answer could overtake a slow one, and it holds any number of
        unanswered requests. Here a client that exceeds the bound is
        disconnected rather than refused: a failure reply would itself have
        to wait behind the unanswered ones (replies go in order), so refusing
        could not bound what the connection holds, and no ordinary client
        keeps that many requests unanswered.

        When a handler's answer is ready at once, its reply is sent before
        the channel hears that the dispatch ended; the channel holds back
        what must follow the reply (a program's output and exit) until then.
        """
        if self._flooded:
            return
        try:
            reader = PayloadReader(packet)
            local = reader.uint32()
            request_type = reader.string()
            rest = reader.rest()
            if not rest:
                raise PayloadError("no want-reply flag")
        except PayloadError:
            self._protocol_error("Cannot decode a channel request", b"malformed channel request")
            return
        channel = self.channels.get(local)
        if channel is None:
            self._protocol_error("A channel request names no open channel", b"unknown channel")
            return
        pending = self.pending_requests
        if pending.full:
            self._flood(request_type)
            return
        try:
            answer = self._dispatch(channel, request_type, rest[1:])
            pending.track(local, answer, want_reply=rest[0] != 0)
        finally:
            dispatched = getattr(channel, "request_dispatched", None)
            if dispatched is not None:
                dispatched()

    def _send_reply(self, local: int, ok: bool) -> None:
        remote = self.localToRemoteChannel.get(local)
        if remote is None:
            return  # the channel is gone; a reply must not follow its close
        message = connection.MSG_CHANNEL_SUCCESS if ok else connection.MSG_CHANNEL_FAILURE
        self.transport.sendPacket(message, struct.pack(">L", remote))

    def _flood(self, request_type: bytes) -> None:
        self._flooded = True
        self.transport.log.event(
            messages.SSH_CHANNEL_REQUESTS_FLOOD,
            "The client sent a {requestType} request with {pendingRequests} requests "
            "unanswered (at most {maxPendingRequests}); disconnecting",
            requestType=request_type.decode("ascii", "replace"),
            pendingRequests=self.pending_requests.count,
            maxPendingRequests=self.pending_requests.limit,
        )
        self.transport.disconnect(DISCONNECT_BY_APPLICATION, "too many unanswered requests")

    def _protocol_error(self, text: str, description: bytes) -> None:
        self.transport.log.event(messages.SSH_DECODE_FAILED, text)
        self.transport.sendDisconnect(DISCONNECT_PROTOCOL_ERROR, description)

    def channelClosed(self, channel: Any) -> None:
        """The channel is closed on both sides: its unanswered requests stop counting."""
        self.pending_requests.channel_closed(channel.id)
        self._windows().pop(channel.id, None)
        if self._env_budgets is not None:
            self._env_budgets.pop(channel.id, None)
        super().channelClosed(channel)

    def _refuse(self, sender_channel: int, reason: int, description: str, name: str) -> None:
        self.transport.audit.channel_rejected(name, description)
        self.transport.sendPacket(
            connection.MSG_CHANNEL_OPEN_FAILURE,
            struct.pack(">2L", sender_channel, reason) + NS(networkString(description)) + NS(b""),
        )
