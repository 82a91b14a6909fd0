"""The taps: what the SSH layer tells the audit log about one connection.

The SSH layer calls a :class:`ConnectionAudit` (one per TCP connection) and
a :class:`ChannelAudit` (one per channel) as things happen; each call
becomes a message of ContainerSSH's audit log (reference table of message
types), stamped with the time in nanoseconds, and goes to the connection's
:class:`~conch_container.audit.stream.AuditStream`.

The ``audit.intercept`` settings are honoured here, unlike in ContainerSSH
(which records standard error under ``stdout`` and every password whatever
the settings say): ``stdin``, ``stdout`` and ``stderr`` each gate their own
data, and a password is recorded only with ``passwords: true`` (otherwise the
authentication messages carry the username without a ``password`` field).

With the audit log off every tap is a :data:`DISABLED` recorder, whose calls
do nothing, so the SSH layer never asks whether it records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from conch_container.audit.message import AuditMessage, MessageType
from conch_container.interfaces import AuditStreamInfo, ExitStatus, PtyRequest

#: What a message costs in the stream's budget beside its data.
MESSAGE_OVERHEAD = 64

STDIN, STDOUT, STDERR = 0, 1, 2


class AuditedChannel(Protocol):
    """What a recorder needs of a channel to hold its data back."""

    def audit_paused(self) -> None:
        """Hold data back: the audit log is behind."""

    def audit_resumed(self) -> None:
        """Data may flow again."""


class _Sink(Protocol):
    """The part of :class:`~conch_container.audit.stream.AuditStream` a recorder uses."""

    def add(self, message: AuditMessage, size: int, *, essential: bool = False) -> None: ...

    def update(self, info: AuditStreamInfo) -> None: ...

    def close(self) -> Any: ...


class ConnectionAudit:
    """The audit log of one connection.

    :param stream: where the messages go (None: nothing is recorded).
    :param info: the stream's information at connection time.
    :param intercept: the ``audit.intercept`` settings (stdin, stdout,
        stderr, passwords); ignored without a stream.
    :param clock_ns: the time in Unix nanoseconds.
    """

    def __init__(
        self,
        stream: _Sink | None,
        info: AuditStreamInfo,
        intercept: Any = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._stream = stream
        self._info = info
        self._clock_ns = clock_ns
        self.recording = stream is not None
        on = self.recording and intercept is not None
        self.stdin = on and bool(intercept.stdin)
        self.stdout = on and bool(intercept.stdout)
        self.stderr = on and bool(intercept.stderr)
        self.forwarding = on and bool(getattr(intercept, "forwarding", False))
        self._passwords = on and bool(intercept.passwords)
        self._channels: dict[int, AuditedChannel] = {}
        self._holding = False

    def _emit(
        self,
        kind: MessageType,
        payload: dict[str, Any] | None = None,
        channel_id: int | None = None,
        size: int = 0,
        *,
        essential: bool = False,
    ) -> None:
        if self._stream is None:
            return
        message = AuditMessage(
            connection_id=self._info.connection_id,
            timestamp=self._clock_ns(),
            type=kind,
            payload=payload,
            channel_id=channel_id,
        )
        self._stream.add(message, size + MESSAGE_OVERHEAD, essential=essential)

    # The connection.

    def connected(self) -> None:
        """The TCP connection opened (the first message)."""
        self._emit(
            MessageType.CONNECT,
            {"remoteAddr": self._info.remote_addr, "country": self._info.country},
        )

    def password(self, outcome: str, username: str, password: bytes, reason: str = "") -> None:
        """A password authentication: ``attempt``, ``success``, ``failure`` or ``error``."""
        payload: dict[str, Any] = {"username": username}
        if self._passwords:
            payload["password"] = password
        if outcome == "error":
            payload["reason"] = reason
        self._emit(_PASSWORD[outcome], payload, size=len(password))

    def public_key(self, outcome: str, username: str, key: str, reason: str = "") -> None:
        """A public key authentication (a signed attempt): outcomes as for :meth:`password`."""
        payload: dict[str, Any] = {"username": username, "key": key}
        if outcome == "error":
            payload["reason"] = reason
        self._emit(_PUBLIC_KEY[outcome], payload, size=len(key))

    def handshake_successful(self, username: str) -> None:
        """A user logged in: the storage learns who."""
        if self._stream is not None:
            self._info = attrs.evolve(self._info, authenticated=True, username=username)
            self._stream.update(self._info)
        self._emit(MessageType.HANDSHAKE_SUCCESSFUL, {"username": username})

    def handshake_failed(self, reason: str) -> None:
        """The connection ended before a login."""
        self._emit(MessageType.HANDSHAKE_FAILED, {"reason": reason})

    def global_request(self, request_type: str) -> None:
        """A global request the gateway does not serve."""
        self._emit(MessageType.GLOBAL_REQUEST_UNKNOWN, {"requestType": request_type})

    def new_channel(self, channel_type: str) -> None:
        """The client asked for a channel."""
        self._emit(MessageType.NEW_CHANNEL, {"channelType": channel_type})

    def channel_rejected(self, channel_type: str, reason: str) -> None:
        """The channel was refused."""
        self._emit(MessageType.NEW_CHANNEL_FAILED, {"channelType": channel_type, "reason": reason})

    def channel_opened(
        self,
        channel_id: int,
        channel_type: str,
        channel: AuditedChannel,
        forwarded: bool = False,
    ) -> ChannelAudit:
        """The channel is open: its recorder; it is held back while the audit log is behind.

        :param forwarded: the channel carries a forwarded connection: its data
            (client to container as stream 0, back as stream 1) is recorded
            under ``intercept.forwarding``.
        """
        self._emit(MessageType.NEW_CHANNEL_SUCCESSFUL, {"channelType": channel_type}, channel_id)
        if self._stream is not None:
            self._channels[channel_id] = channel
            if self._holding:
                channel.audit_paused()
        audit = ChannelAudit(self, channel_id)
        if forwarded:
            audit.stdin = audit.stdout = self.forwarding
            audit.stderr = False
        return audit

    def channel_gone(self, channel_id: int) -> None:
        """The channel closed; it is no longer held back."""
        self._channels.pop(channel_id, None)

    def disconnected(self) -> Any:
        """The connection closed: the last message; the stream ends.

        :return: a Deferred that fires once the stream is written and closed
            (at once without a stream).
        """
        self._emit(MessageType.DISCONNECT, essential=True)
        self._channels.clear()
        stream, self._stream = self._stream, None
        return stream.close() if stream is not None else None

    # Pressure from the stream.

    def pressure(self, holding: bool) -> None:
        """The stream is behind (True) or caught up (False): pass it on to every channel."""
        self._holding = holding
        for channel in list(self._channels.values()):
            if holding:
                channel.audit_paused()
            else:
                channel.audit_resumed()


class ChannelAudit:
    """The audit log of one channel: its requests (numbered from 0), data and end."""

    def __init__(self, connection: ConnectionAudit, channel_id: int) -> None:
        self._connection = connection
        self.channel_id = channel_id
        self._next_request = 0
        self.stdin = connection.stdin
        self.stdout = connection.stdout
        self.stderr = connection.stderr

    def _emit(
        self, kind: MessageType, payload: dict[str, Any] | None = None, size: int = 0
    ) -> None:
        self._connection._emit(kind, payload, self.channel_id, size)

    def next_request_id(self) -> int:
        """The id of the request that just arrived."""
        request_id = self._next_request
        self._next_request += 1
        return request_id

    def unknown_request(self, request_id: int, request_type: str, payload: bytes) -> None:
        self._emit(
            MessageType.CHANNEL_REQUEST_UNKNOWN,
            {"requestId": request_id, "requestType": request_type, "payload": payload},
            len(payload),
        )

    def undecodable_request(
        self, request_id: int, request_type: str, payload: bytes, reason: str
    ) -> None:
        self._emit(
            MessageType.CHANNEL_REQUEST_DECODE_FAILED,
            {
                "requestId": request_id,
                "requestType": request_type,
                "payload": payload,
                "reason": reason,
            },
            len(payload),
        )

    def setenv(self, request_id: int, name: str, value: str) -> None:
        self._emit(
            MessageType.SETENV,
            {"requestId": request_id, "name": name, "value": value},
            len(name) + len(value),
        )

    def pty(self, request_id: int, pty: PtyRequest) -> None:
        self._emit(
            MessageType.PTY,
            {
                "requestId": request_id,
                "term": pty.term,
                "columns": pty.columns,
                "rows": pty.rows,
                "width": pty.width,
                "height": pty.height,
                "modelist": pty.modes,
            },
            len(pty.modes),
        )

    def shell(self, request_id: int) -> None:
        self._emit(MessageType.SHELL, {"requestId": request_id})

    def exec(self, request_id: int, program: str) -> None:
        self._emit(MessageType.EXEC, {"requestId": request_id, "program": program}, len(program))

    def subsystem(self, request_id: int, subsystem: str) -> None:
        self._emit(MessageType.SUBSYSTEM, {"requestId": request_id, "subsystem": subsystem})

    def window(self, request_id: int, columns: int, rows: int, width: int, height: int) -> None:
        self._emit(
            MessageType.WINDOW,
            {
                "requestId": request_id,
                "columns": columns,
                "rows": rows,
                "width": width,
                "height": height,
            },
        )

    def signal(self, request_id: int, signal: str) -> None:
        self._emit(MessageType.SIGNAL, {"requestId": request_id, "signal": signal})

    def request_failed(self, request_id: int, reason: str) -> None:
        self._emit(MessageType.REQUEST_FAILED, {"requestId": request_id, "reason": reason})

    def io(self, stream: int, data: bytes) -> None:
        """Data on the channel (stdin from the client, stdout or stderr to it), as intercepted."""
        if (self.stdin, self.stdout, self.stderr)[stream]:
            self._emit(MessageType.IO, {"stream": stream, "data": data}, len(data))

    def close_write(self) -> None:
        """The client sent EOF."""
        self._emit(MessageType.CLOSE_WRITE)

    def exited(self, status: ExitStatus) -> None:
        """The exit status or signal sent to the client."""
        if status.signal is not None:
            self._emit(
                MessageType.EXIT_SIGNAL,
                {
                    "signal": status.signal,
                    "coreDumped": status.core_dumped,
                    "errorMessage": status.message,
                    "languageTag": "",
                },
            )
        else:
            self._emit(MessageType.EXIT, {"exitStatus": status.code})

    def closed(self) -> None:
        """The channel closed."""
        self._emit(MessageType.CLOSE)
        self._connection.channel_gone(self.channel_id)


_PASSWORD = {
    "attempt": MessageType.AUTH_PASSWORD,
    "success": MessageType.AUTH_PASSWORD_SUCCESSFUL,
    "failure": MessageType.AUTH_PASSWORD_FAILED,
    "error": MessageType.AUTH_PASSWORD_BACKEND_ERROR,
}
_PUBLIC_KEY = {
    "attempt": MessageType.AUTH_PUBKEY,
    "success": MessageType.AUTH_PUBKEY_SUCCESSFUL,
    "failure": MessageType.AUTH_PUBKEY_FAILED,
    "error": MessageType.AUTH_PUBKEY_BACKEND_ERROR,
}

#: The recorder of a connection when the audit log is off: every call does nothing.
DISABLED = ConnectionAudit(None, AuditStreamInfo(connection_id="", start_time=0, remote_addr=""))
DISABLED_CHANNEL = ChannelAudit(DISABLED, 0)
