"""The taps: the messages a connection's events become, and the intercept settings."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.message import AuditMessage, MessageType
from conch_container.audit.recorder import DISABLED, STDERR, STDIN, STDOUT, ConnectionAudit
from conch_container.config.audit import AuditInterceptConfig
from conch_container.interfaces import AuditStreamInfo, ExitStatus, PtyRequest

INFO = AuditStreamInfo(connection_id="c0ffee", start_time=1, remote_addr="192.0.2.1")


class ListStream:
    def __init__(self) -> None:
        self.messages: list[AuditMessage] = []
        self.sizes: list[int] = []
        self.infos: list[AuditStreamInfo] = []
        self.closed = False

    def add(self, message: AuditMessage, size: int, *, essential: bool = False) -> None:
        self.messages.append(message)
        self.sizes.append(size)

    def update(self, info: AuditStreamInfo) -> None:
        self.infos.append(info)

    def close(self) -> None:
        self.closed = True


class Channel:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def audit_paused(self) -> None:
        self.calls.append("paused")

    def audit_resumed(self) -> None:
        self.calls.append("resumed")


def recorder(**intercept: bool) -> tuple[ConnectionAudit, ListStream]:
    stream = ListStream()
    ticks = iter(range(1000, 10**6))
    audit = ConnectionAudit(
        stream, INFO, AuditInterceptConfig(**intercept), clock_ns=lambda: next(ticks)
    )
    return audit, stream


def summary(stream: ListStream) -> list[tuple[int, Any, int | None]]:
    return [(m.type, m.payload, m.channel_id) for m in stream.messages]


class ForwardedChannelTests(SynchronousTestCase):
    """A forwarded connection's data is recorded under ``intercept.forwarding`` only."""

    def io_recorded(self, **intercept: bool) -> list[Any]:
        audit, stream = recorder(**intercept)
        channel = audit.channel_opened(1, "direct-tcpip", Channel(), forwarded=True)
        channel.io(STDIN, b"GET /")
        channel.io(STDOUT, b"200 OK")
        return [m.payload for m in stream.messages if m.type == MessageType.IO]

    def test_forwarding_on(self) -> None:
        """Client to container as stream 0, back as stream 1."""
        self.assertEqual(
            self.io_recorded(forwarding=True),
            [{"stream": 0, "data": b"GET /"}, {"stream": 1, "data": b"200 OK"}],
        )

    def test_session_interception_does_not_apply(self) -> None:
        """stdin/stdout interception is about sessions: nothing of a forward."""
        self.assertEqual(self.io_recorded(stdin=True, stdout=True, stderr=True), [])


class ConnectionTests(SynchronousTestCase):
    def test_login_and_session(self) -> None:
        """A password login and a shell session, in ContainerSSH's messages."""
        audit, stream = recorder(stdin=True, stdout=True, stderr=True, passwords=True)
        audit.connected()
        audit.password("attempt", "foo", b"bar")
        audit.password("success", "foo", b"bar")
        audit.handshake_successful("foo")
        audit.new_channel("session")
        channel = audit.channel_opened(0, "session", Channel())
        pty = PtyRequest("xterm", 80, 25, 640, 480, b"\x81\x00\x00%\x80\x00")
        channel.pty(channel.next_request_id(), pty)
        channel.shell(channel.next_request_id())
        channel.io(STDIN, b"ls\n")
        channel.io(STDOUT, b"file\n")
        channel.io(STDERR, b"oops\n")
        channel.window(channel.next_request_id(), 120, 30, 0, 0)
        channel.close_write()
        channel.exited(ExitStatus(code=0))
        channel.closed()
        audit.disconnected()
        self.assertEqual(
            summary(stream),
            [
                (MessageType.CONNECT, {"remoteAddr": "192.0.2.1", "country": "XX"}, None),
                (MessageType.AUTH_PASSWORD, {"username": "foo", "password": b"bar"}, None),
                (
                    MessageType.AUTH_PASSWORD_SUCCESSFUL,
                    {"username": "foo", "password": b"bar"},
                    None,
                ),
                (MessageType.HANDSHAKE_SUCCESSFUL, {"username": "foo"}, None),
                (MessageType.NEW_CHANNEL, {"channelType": "session"}, None),
                (MessageType.NEW_CHANNEL_SUCCESSFUL, {"channelType": "session"}, 0),
                (
                    MessageType.PTY,
                    {
                        "requestId": 0,
                        "term": "xterm",
                        "columns": 80,
                        "rows": 25,
                        "width": 640,
                        "height": 480,
                        "modelist": b"\x81\x00\x00%\x80\x00",
                    },
                    0,
                ),
                (MessageType.SHELL, {"requestId": 1}, 0),
                (MessageType.IO, {"stream": 0, "data": b"ls\n"}, 0),
                (MessageType.IO, {"stream": 1, "data": b"file\n"}, 0),
                (MessageType.IO, {"stream": 2, "data": b"oops\n"}, 0),
                (
                    MessageType.WINDOW,
                    {"requestId": 2, "columns": 120, "rows": 30, "width": 0, "height": 0},
                    0,
                ),
                (MessageType.CLOSE_WRITE, None, 0),
                (MessageType.EXIT, {"exitStatus": 0}, 0),
                (MessageType.CLOSE, None, 0),
                (MessageType.DISCONNECT, None, None),
            ],
        )
        self.assertEqual([m.timestamp for m in stream.messages], list(range(1000, 1016)))
        self.assertEqual({m.connection_id for m in stream.messages}, {"c0ffee"})
        self.assertEqual([i.username for i in stream.infos], ["foo"])
        self.assertTrue(stream.infos[0].authenticated)
        self.assertTrue(stream.closed)

    def test_passwords_not_intercepted(self) -> None:
        """Without intercept.passwords the password is left out (ContainerSSH always records it)."""
        audit, stream = recorder()
        audit.password("attempt", "foo", b"secret")
        audit.password("failure", "foo", b"secret")
        audit.password("error", "foo", b"secret", "webhook down")
        self.assertEqual(
            summary(stream),
            [
                (MessageType.AUTH_PASSWORD, {"username": "foo"}, None),
                (MessageType.AUTH_PASSWORD_FAILED, {"username": "foo"}, None),
                (
                    MessageType.AUTH_PASSWORD_BACKEND_ERROR,
                    {"username": "foo", "reason": "webhook down"},
                    None,
                ),
            ],
        )

    def test_each_stream_gated(self) -> None:
        """stdin, stdout and stderr are each recorded only when their own setting says so."""
        for gate, kept in ((STDIN, "stdin"), (STDOUT, "stdout"), (STDERR, "stderr")):
            audit, stream = recorder(**{kept: True})
            channel = audit.channel_opened(0, "session", Channel())
            for each in (STDIN, STDOUT, STDERR):
                channel.io(each, b"x")
            self.assertEqual(
                [m.payload for m in stream.messages if m.type == MessageType.IO],
                [{"stream": gate, "data": b"x"}],
            )

    def test_public_key(self) -> None:
        audit, stream = recorder()
        audit.public_key("attempt", "foo", "ssh-ed25519 AAAA")
        audit.public_key("error", "foo", "ssh-ed25519 AAAA", "unavailable")
        self.assertEqual(
            summary(stream),
            [
                (MessageType.AUTH_PUBKEY, {"username": "foo", "key": "ssh-ed25519 AAAA"}, None),
                (
                    MessageType.AUTH_PUBKEY_BACKEND_ERROR,
                    {"username": "foo", "key": "ssh-ed25519 AAAA", "reason": "unavailable"},
                    None,
                ),
            ],
        )

    def test_requests(self) -> None:
        audit, stream = recorder()
        channel = audit.channel_opened(3, "session", Channel())
        channel.setenv(channel.next_request_id(), "LANG", "C")
        channel.exec(channel.next_request_id(), "id")
        channel.signal(channel.next_request_id(), "TERM")
        channel.subsystem(channel.next_request_id(), "sftp")
        channel.unknown_request(channel.next_request_id(), "x11-req", b"\x00")
        channel.undecodable_request(channel.next_request_id(), "exec", b"\x01", "short")
        channel.request_failed(5, "failed to unmarshal payload")
        channel.exited(ExitStatus(signal="KILL", core_dumped=True, message="killed"))
        audit.global_request("keepalive@openssh.com")
        audit.channel_rejected("direct-tcpip", "unsupported channel type")
        audit.handshake_failed("connection lost")
        self.assertEqual(
            summary(stream)[1:],
            [
                (MessageType.SETENV, {"requestId": 0, "name": "LANG", "value": "C"}, 3),
                (MessageType.EXEC, {"requestId": 1, "program": "id"}, 3),
                (MessageType.SIGNAL, {"requestId": 2, "signal": "TERM"}, 3),
                (MessageType.SUBSYSTEM, {"requestId": 3, "subsystem": "sftp"}, 3),
                (
                    MessageType.CHANNEL_REQUEST_UNKNOWN,
                    {"requestId": 4, "requestType": "x11-req", "payload": b"\x00"},
                    3,
                ),
                (
                    MessageType.CHANNEL_REQUEST_DECODE_FAILED,
                    {"requestId": 5, "requestType": "exec", "payload": b"\x01", "reason": "short"},
                    3,
                ),
                (
                    MessageType.REQUEST_FAILED,
                    {"requestId": 5, "reason": "failed to unmarshal payload"},
                    3,
                ),
                (
                    MessageType.EXIT_SIGNAL,
                    {
                        "signal": "KILL",
                        "coreDumped": True,
                        "errorMessage": "killed",
                        "languageTag": "",
                    },
                    3,
                ),
                (
                    MessageType.GLOBAL_REQUEST_UNKNOWN,
                    {"requestType": "keepalive@openssh.com"},
                    None,
                ),
                (
                    MessageType.NEW_CHANNEL_FAILED,
                    {"channelType": "direct-tcpip", "reason": "unsupported channel type"},
                    None,
                ),
                (MessageType.HANDSHAKE_FAILED, {"reason": "connection lost"}, None),
            ],
        )

    def test_pressure_reaches_channels(self) -> None:
        """Open channels are held back and let go; one opened while held starts held."""
        audit, _ = recorder()
        first, second = Channel(), Channel()
        audit.channel_opened(0, "session", first)
        audit.pressure(True)
        audit.channel_opened(1, "session", second)
        audit.pressure(False)
        audit.channel_gone(0)
        audit.pressure(True)
        self.assertEqual(first.calls, ["paused", "resumed"])
        self.assertEqual(second.calls, ["paused", "resumed", "paused"])

    def test_disabled(self) -> None:
        """The recorder without an audit log records nothing and holds nothing back."""
        channel = Channel()
        tap = DISABLED.channel_opened(0, "session", channel)
        tap.io(STDOUT, b"x")
        DISABLED.pressure(True)
        self.assertEqual(channel.calls, [])
        self.assertIsNone(DISABLED.disconnected())
