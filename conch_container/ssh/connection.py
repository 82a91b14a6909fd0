"""The ``ssh-connection`` service: channels, global requests and keepalives."""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.error import ConchError
from twisted.conch.ssh import connection
from twisted.conch.ssh.common import NS
from twisted.conch.ssh.transport import DISCONNECT_CONNECTION_LOST, DISCONNECT_PROTOCOL_ERROR
from twisted.internet.defer import Deferred
from twisted.python.compat import networkString

from conch_container import messages
from conch_container.ssh.keepalive import KeepAlive
from conch_container.ssh.requests import PayloadError, PayloadReader


class ServerConnection(connection.SSHConnection):
    """Conch's connection service, with the gateway's channel policy and keepalives.

    - a channel type the avatar does not serve is refused with
      ``OPEN_UNKNOWN_CHANNEL_TYPE`` and ``"unsupported channel type"``
      (ContainerSSH's answer), logged without a traceback;
    - while the gateway shuts down no new channel is opened;
    - keepalive requests go out every ``ssh.clientAliveInterval`` once the
      user is logged in (this service only starts after authentication).
    """

    transport: Any
    _keepalive: KeepAlive | None = None
    _looked_up: Any = None

    def serviceStarted(self) -> None:
        """The user logged in: start keepalives if configured."""
        super().serviceStarted()
        factory = self.transport.factory
        interval = factory.client_alive_interval
        if interval > 0:
            self._keepalive = KeepAlive(
                self.transport.clock,
                interval,
                factory.client_alive_count_max,
                self._send_keepalive,
                self._client_dead,
                self.transport.log,
            )
            self._keepalive.start()

    def serviceStopped(self) -> None:
        """Stop keepalives, then close every channel (Conch)."""
        if self._keepalive is not None:
            self._keepalive.stop()
        super().serviceStopped()

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
                sender_channel, connection.OPEN_UNKNOWN_CHANNEL_TYPE, "unsupported channel type"
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
            )
            return
        # Look the channel up here rather than inside Conch's handler: Conch
        # logs every refusal (a ConchError from lookupChannel) as a critical
        # failure with a traceback, while a refused session (a session limit,
        # a backend that cannot open one) is an ordinary, already logged event.
        try:
            window, max_packet = reader.uint32(), reader.uint32()
            self._looked_up = super().getChannel(channel_type, window, max_packet, reader.rest())
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
            self._refuse(sender_channel, reason, str(description))
            return
        super().ssh_CHANNEL_OPEN(packet)

    def getChannel(
        self, channelType: bytes, windowSize: int, maxPacket: int, data: bytes
    ) -> Any:
        """The channel :meth:`ssh_CHANNEL_OPEN` already looked up for this open."""
        channel, self._looked_up = self._looked_up, None
        if channel is None:
            return super().getChannel(channelType, windowSize, maxPacket, data)
        return channel

    def ssh_CHANNEL_REQUEST(self, packet: bytes) -> Any:
        """Dispatch a channel request (Conch), then tell the channel its reply is on its way.

        When a handler's answer is ready at once, Conch sends the reply only
        after the handler returned; the channel holds back what must follow
        the reply (a program's output and exit) until this point.
        """
        try:
            (local,) = struct.unpack(">L", packet[:4])
        except struct.error:
            local = None
        channel = self.channels.get(local)
        try:
            return super().ssh_CHANNEL_REQUEST(packet)
        finally:
            dispatched = getattr(channel, "request_dispatched", None)
            if dispatched is not None:
                dispatched()

    def _refuse(self, sender_channel: int, reason: int, description: str) -> None:
        self.transport.sendPacket(
            connection.MSG_CHANNEL_OPEN_FAILURE,
            struct.pack(">2L", sender_channel, reason) + NS(networkString(description)) + NS(b""),
        )
