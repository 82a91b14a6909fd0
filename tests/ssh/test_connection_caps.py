"""The per-connection limits: channels, pending requests, ``env``, terminals, windows.

The whole SSH server in memory with the fake backend, the limits lowered
through the ``ssh`` settings so that each can be reached in a few requests.
Nothing here uses real time or a socket.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.conch.ssh import common, connection
from twisted.conch.ssh.transport import DISCONNECT_BY_APPLICATION, DISCONNECT_PROTOCOL_ERROR
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import SSHConfig
from conch_container.config.errors import ConfigError
from conch_container.config.loader import parse_config
from conch_container.ssh.connection import MAX_WINDOW
from conch_container.ssh.pendingrequests import MAX_PENDING_REQUESTS
from conch_container.ssh.requests import (
    MAX_TERMINAL_MODES_BYTES,
    MAX_TERMINAL_TYPE_BYTES,
    PayloadError,
    parse_pty_req,
)
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    env_request,
    exec_request,
    make_config,
    pty_request,
    request_result,
    window_change,
)

#: The smallest window cap the settings allow; also the packet size cap used here.
CAP = 32768
#: The window the gateway grants the client in these tests: four packets.
RECEIVE_WINDOW = 4 * CAP


class OtherChannel(ClientChannel):
    """A channel type the gateway does not serve (X11)."""

    name = b"x11"


class CapsTestCase(SynchronousTestCase):
    """A logged-in client of a server with the given ``ssh`` settings."""

    settings: dict[str, Any] = {}

    def setUp(self) -> None:
        self.harness = Harness(make_config(**self.settings))
        self.client = self.harness.login()

    def server_connection(self) -> Any:
        return self.client.server.service

    def send_raw(self, message: int, payload: bytes) -> None:
        """A packet from the client, built by the test rather than by Conch."""
        self.client.transport.sendPacket(message, payload)
        self.harness.flush()

    def assert_protocol_error(self, description: str) -> None:
        self.assertTrue(self.client.lost.called)
        self.assertEqual(self.client.disconnect_reason, (DISCONNECT_PROTOCOL_ERROR, description))


class ChannelLimitTests(CapsTestCase):
    """``ssh.maxChannels``: channels open at once on one connection."""

    settings = {"max_channels": 2}

    def test_up_to_the_limit(self) -> None:
        """As many channels as the limit allows open normally."""
        channels = [self.harness.open_session(self.client) for _ in range(2)]
        for channel in channels:
            self.successResultOf(channel.opened)
        self.assertEqual(self.harness.events_with("SSH_CHANNEL_LIMIT"), [])

    def test_beyond_the_limit(self) -> None:
        """One more is refused as a resource shortage, logged, and opens no backend session."""
        for _ in range(2):
            self.harness.open_session(self.client)
        refused = self.harness.open_session(self.client)
        self.failureResultOf(refused.opened)
        self.assertEqual(
            refused.open_failure.args,
            (b"too many channels", connection.OPEN_RESOURCE_SHORTAGE),
        )
        [event] = self.harness.events_with("SSH_CHANNEL_LIMIT")
        self.assertEqual((event["openChannels"], event["maxChannels"]), (2, 2))
        [rejected] = self.harness.events_with("SSH_NEW_CHANNEL_REJECTED")
        self.assertEqual(rejected["reason"], "too many channels")
        self.assertEqual(len(self.harness.backend.sessions), 2)
        self.assertFalse(self.client.lost.called)

    def test_closed_channel_makes_room(self) -> None:
        """A channel closed on both sides no longer counts."""
        first = self.harness.open_session(self.client)
        self.harness.open_session(self.client)
        first.loseConnection()
        self.harness.flush()
        self.successResultOf(self.harness.open_session(self.client).opened)

    def test_unknown_type_still_unsupported(self) -> None:
        """At the limit, a channel type the gateway does not serve is refused as before."""
        for _ in range(2):
            self.harness.open_session(self.client)
        channel = OtherChannel(conn=self.client.connection)
        self.client.connection.openChannel(channel, b"\x00" * 8)
        self.harness.flush()
        self.assertEqual(
            channel.open_failure.args,
            (b"unsupported channel type", connection.OPEN_UNKNOWN_CHANNEL_TYPE),
        )
        self.failureResultOf(channel.opened)
        self.assertEqual(self.harness.events_with("SSH_CHANNEL_LIMIT"), [])


class PendingRequestLimitTests(CapsTestCase):
    """``ssh.maxPendingRequests`` replaces the fixed bound on unanswered channel requests."""

    settings = {"max_pending_requests": 3}

    def setUp(self) -> None:
        super().setUp()
        # Each resize takes a second in the fake backend, so its reply waits.
        self.harness.backend.operation_delay = 1.0
        self.channel = self.harness.open_session(self.client)
        self.channel.request(b"pty-req", pty_request())
        started = self.channel.request(b"exec", exec_request("sleep 100000"))
        self.harness.flush()
        self.assertEqual(request_result(started), "ok")

    def resize(self, count: int) -> list[str]:
        """Send ``count`` resizes; their outcomes so far."""
        replies = [
            self.channel.request(b"window-change", window_change(100 + i, 30)) for i in range(count)
        ]
        self.harness.flush()
        return [request_result(d) for d in replies]

    def test_up_to_the_setting(self) -> None:
        """As many unanswered requests as configured keep the connection."""
        self.assertEqual(self.resize(3), ["pending"] * 3)
        self.assertEqual(self.server_connection().pending_requests.count, 3)
        self.assertFalse(self.client.lost.called)

    def test_beyond_the_setting(self) -> None:
        """One more disconnects, and the log names the configured bound."""
        self.assertEqual(self.resize(4), ["failed"] * 4)  # the connection is gone
        self.assertTrue(self.client.lost.called)
        self.assertEqual(
            self.client.disconnect_reason,
            (DISCONNECT_BY_APPLICATION, "too many unanswered requests"),
        )
        [event] = self.harness.events_with("SSH_CHANNEL_REQUESTS_FLOOD")
        self.assertEqual(event["maxPendingRequests"], 3)


class EnvLimitTests(CapsTestCase):
    """``ssh.maxEnvVariables`` and ``ssh.maxEnvSize``: the ``env`` requests of one channel."""

    # Each payload is the name and value plus 8 bytes of length fields.
    settings = {"max_env_variables": 3, "max_env_size": 40}

    def setUp(self) -> None:
        super().setUp()
        self.channel = self.harness.open_session(self.client)

    def env(self, name: str, value: str, channel: ClientChannel | None = None) -> str:
        d = (channel or self.channel).request(b"env", env_request(name, value))
        self.harness.flush()
        return request_result(d)

    def backend_env(self, index: int = -1) -> dict[str, str]:
        return dict(self.harness.backend.sessions[index].env)

    def test_up_to_the_count(self) -> None:
        """As many variables as allowed are all set."""
        self.assertEqual([self.env(n, "v") for n in "ABC"], ["ok"] * 3)
        self.assertEqual({n: self.backend_env()[n] for n in "ABC"}, dict.fromkeys("ABC", "v"))
        self.assertEqual(self.harness.events_with("SSH_ENV_LIMIT"), [])

    def test_beyond_the_count(self) -> None:
        """The next one is refused, logged, and never reaches the backend."""
        for name in "ABC":
            self.env(name, "v")
        self.assertEqual(self.env("D", "v"), "failed")
        self.assertNotIn("D", self.backend_env())
        [event] = self.harness.events_with("SSH_ENV_LIMIT")
        self.assertEqual(event["reason"], "more than 3 environment variables on the channel")
        self.assertEqual(event["variables"], 3)
        self.assertFalse(self.client.lost.called)

    def test_up_to_the_size(self) -> None:
        """Payloads that add up to exactly the size are set."""
        self.assertEqual(self.env("A", "x" * 20), "ok")  # 29 bytes
        self.assertEqual(self.env("B", "y" * 2), "ok")  # 11 bytes: 40 in all
        self.assertEqual(self.backend_env()["B"], "yy")

    def test_beyond_the_size(self) -> None:
        """One byte more is refused and logged with the size so far."""
        self.env("A", "x" * 20)
        self.assertEqual(self.env("B", "y" * 3), "failed")
        self.assertNotIn("B", self.backend_env())
        [event] = self.harness.events_with("SSH_ENV_LIMIT")
        self.assertEqual(event["size"], 29)
        self.assertEqual(event["reason"], "environment variables larger than 40 bytes together")

    def test_refused_variables_count(self) -> None:
        """A variable the backend refuses still uses up the budget."""
        self.harness.backend.forbidden_env = {"NO"}
        self.assertEqual([self.env("NO", "v") for _ in range(3)], ["failed"] * 3)
        self.assertEqual(self.env("A", "v"), "failed")
        self.assertEqual(len(self.harness.events_with("SSH_ENV_LIMIT")), 1)

    def test_each_channel_has_its_own_budget(self) -> None:
        """A full budget on one channel leaves another channel's untouched."""
        for name in "ABCD":
            self.env(name, "v")
        other = self.harness.open_session(self.client)
        self.assertEqual(self.env("E", "v", other), "ok")
        self.assertEqual(self.backend_env()["E"], "v")


def pty_payload(term: bytes = b"xterm", modes: bytes = b"\x00") -> bytes:
    return common.NS(term) + struct.pack(">4L", 80, 25, 0, 0) + common.NS(modes)


#: A mode entry (opcode and uint32): ECHO on.
ECHO_ON = struct.pack(">BL", 53, 1)


class TerminalLimitTests(CapsTestCase):
    """The terminal type and encoded modes of ``pty-req`` have a length limit."""

    def pty(self, payload: bytes) -> str:
        channel = self.harness.open_session(self.client)
        d = channel.request(b"pty-req", payload)
        self.harness.flush()
        return request_result(d)

    def test_limits_are_what_the_documentation_says(self) -> None:
        """256 bytes of terminal type; 256 mode entries and TTY_OP_END."""
        self.assertEqual((MAX_TERMINAL_TYPE_BYTES, MAX_TERMINAL_MODES_BYTES), (256, 1281))

    def test_longest_accepted(self) -> None:
        """A terminal type and modes of exactly the limits are accepted."""
        modes = ECHO_ON * 256 + b"\x00"
        self.assertEqual(self.pty(pty_payload(b"x" * 256, modes)), "ok")
        pty = self.harness.backend.sessions[-1].pty
        assert pty is not None
        self.assertEqual((len(pty.term), len(pty.modes)), (256, 1281))

    def test_terminal_type_too_long(self) -> None:
        """A byte more of terminal type is a decode failure, logged, and no terminal."""
        self.assertEqual(self.pty(pty_payload(b"x" * 257)), "failed")
        [event] = self.harness.events_with("SSH_DECODE_FAILED")
        self.assertEqual(event["reason"], "terminal type longer than 256 bytes")
        self.assertIsNone(self.harness.backend.sessions[-1].pty)

    def test_modes_too_long(self) -> None:
        """One more mode entry is a decode failure, logged, and no terminal."""
        self.assertEqual(self.pty(pty_payload(modes=ECHO_ON * 257 + b"\x00")), "failed")
        [event] = self.harness.events_with("SSH_DECODE_FAILED")
        self.assertEqual(event["reason"], "terminal modes longer than 1281 bytes")
        self.assertIsNone(self.harness.backend.sessions[-1].pty)

    def test_multibyte_terminal_type_counts_bytes(self) -> None:
        """The limit is in bytes of UTF-8, not characters."""
        self.assertEqual(parse_pty_req(pty_payload("é".encode() * 128))[0], "é" * 128)
        self.assertRaises(PayloadError, parse_pty_req, pty_payload("é".encode() * 128 + b"x"))


class WindowTests(CapsTestCase):
    """``ssh.maxWindowSize`` and ``ssh.maxPacketSize``: what the gateway honours of the client's."""

    settings = {
        "max_window_size": 2 * CAP,
        "max_packet_size": CAP,
        "receive_window_size": RECEIVE_WINDOW,
    }

    def open(self, window: int, max_packet: int = CAP) -> tuple[ClientChannel, Any]:
        """A session announcing ``window`` and ``max_packet``; the server's side of it."""
        channel = ClientChannel(conn=self.client.connection)
        channel.localWindowSize = channel.localWindowLeft = window
        channel.localMaxPacket = max_packet
        self.client.connection.openChannel(channel)
        self.harness.flush()
        self.successResultOf(channel.opened)
        return channel, self.server_connection().channels[channel_id(self.client, channel)]

    def adjust(self, channel: ClientChannel, increment: int) -> None:
        """A window adjust, sent whatever the client's own view of its window."""
        remote = self.client.connection.channelsToRemoteChannel[channel]
        self.send_raw(connection.MSG_CHANNEL_WINDOW_ADJUST, struct.pack(">2L", remote, increment))

    def download(self, size: int) -> ClientChannel:
        """A channel announcing the largest window, running ``head -c size``; nothing read."""
        self.client.connection.hold_window = True
        channel, _ = self.open(MAX_WINDOW)
        channel.request(b"exec", exec_request(f"head -c {size} /dev/zero"))
        self.harness.flush()
        return channel

    def test_within_the_caps(self) -> None:
        """A window and packet size within the caps are used as announced, quietly."""
        _, server = self.open(2 * CAP, CAP)
        self.assertEqual((server.remoteWindowLeft, server.remoteMaxPacket), (2 * CAP, CAP))
        self.assertEqual(self.harness.events_with("SSH_WINDOW_CLAMPED"), [])

    def test_larger_announced_sizes_are_clamped(self) -> None:
        """A 4 GiB window and 1 MiB packets are honoured up to the caps, and logged."""
        _, server = self.open(MAX_WINDOW, 1 << 20)
        self.assertEqual((server.remoteWindowLeft, server.remoteMaxPacket), (2 * CAP, CAP))
        [event] = self.harness.events_with("SSH_WINDOW_CLAMPED")
        self.assertEqual((event["window"], event["maxPacket"]), (MAX_WINDOW, 1 << 20))
        self.assertEqual((event["honouredWindow"], event["honouredPacket"]), (2 * CAP, CAP))

    def test_window_granted_to_the_client(self) -> None:
        """The open confirmation grants the client ``ssh.receiveWindowSize`` bytes, and
        the gateway tops it up to that again once half of it was used."""
        channel, server = self.open(2 * CAP)
        self.assertEqual(channel.remoteWindowLeft, RECEIVE_WINDOW)
        self.assertEqual(server.localWindowSize, RECEIVE_WINDOW)
        channel.request(b"exec", exec_request("cat"))
        self.harness.flush()
        chunk = b"x" * CAP
        for _ in range(RECEIVE_WINDOW // CAP // 2 + 1):
            channel.write(chunk)
        self.harness.flush()
        self.assertEqual(channel.remoteWindowLeft, RECEIVE_WINDOW)

    def test_zero_packet_size(self) -> None:
        """A packet size of 0 is honoured as 1 byte rather than breaking the output path.

        The client cannot take the output it asked not to get (Conch drops
        it), but the program runs and the channel ends normally.
        """
        channel, server = self.open(100, 0)
        self.assertEqual(server.remoteMaxPacket, 1)
        channel.request(b"exec", exec_request("echo hi"))
        self.harness.flush()
        self.assertEqual(channel.exit_status, 0)
        self.assertEqual(self.harness.events_with("UNKNOWN_ERROR"), [])
        self.assertEqual(self.harness.backend.errors, [])

    def test_no_more_than_the_cap_ahead_of_the_client(self) -> None:
        """With 4 GiB announced and nothing read, the gateway sends the cap and pauses."""
        channel = self.download(10 * CAP)
        self.assertEqual(len(channel.stdout), 2 * CAP)
        self.assertTrue(self.harness.backend.sessions[-1]._paused)
        self.assertIsNone(channel.exit_status)

    def test_reading_keeps_the_download_going(self) -> None:
        """A client that reads and gives back what it read gets everything, never disconnected."""
        channel = self.download(10 * CAP)
        for _ in range(20):
            if channel.exit_status is not None:
                break
            self.client.connection.release_window(channel)
            self.client.connection.hold_window = True
            self.harness.flush()
        self.assertEqual((len(channel.stdout), channel.exit_status), (10 * CAP, 0))
        self.assertIsNone(self.client.disconnect_reason)

    def test_adjust_is_clamped(self) -> None:
        """A window adjust beyond the cap raises the window only to the cap."""
        channel, server = self.open(CAP)
        self.adjust(channel, 10 * CAP)
        self.assertEqual(server.remoteWindowLeft, 2 * CAP)
        self.assertFalse(self.client.lost.called)

    def test_adjust_up_to_the_largest_window(self) -> None:
        """A window adjust that brings the client's window to exactly 2^32-1 is accepted."""
        channel, server = self.open(CAP)
        self.adjust(channel, MAX_WINDOW - CAP)
        self.assertEqual(server.remoteWindowLeft, 2 * CAP)
        self.assertFalse(self.client.lost.called)
        self.assertEqual(self.harness.events_with("SSH_WINDOW_OVERFLOW"), [])

    def test_adjust_past_the_largest_window(self) -> None:
        """One more byte is a protocol error, even though the gateway uses only the cap."""
        channel, _ = self.open(CAP)
        self.adjust(channel, MAX_WINDOW - CAP)
        self.adjust(channel, 1)
        self.assert_protocol_error("window adjust overflow")
        [event] = self.harness.events_with("SSH_WINDOW_OVERFLOW")
        self.assertEqual(event["window"], MAX_WINDOW + 1)

    def test_adjust_for_no_channel(self) -> None:
        """A window adjust naming no open channel is a protocol error, not an exception."""
        self.send_raw(connection.MSG_CHANNEL_WINDOW_ADJUST, struct.pack(">2L", 7, 100))
        self.assert_protocol_error("unknown channel")
        self.assertIn("SSH_DECODE_FAILED", self.harness.codes())

    def test_malformed_adjust(self) -> None:
        """A truncated window adjust is a protocol error."""
        self.send_raw(connection.MSG_CHANNEL_WINDOW_ADJUST, b"\x00\x00")
        self.assert_protocol_error("malformed window adjust")


def channel_id(client: Any, channel: ClientChannel) -> int:
    """The server's id for a client channel."""
    remote: int = client.connection.channelsToRemoteChannel[channel]
    return remote


class GlobalRequestTests(CapsTestCase):
    """Global requests are answered as they arrive, so none can pile up."""

    def test_many_keepalives_are_each_answered(self) -> None:
        """A thousand ``keepalive@openssh.com`` requests: a thousand replies, nothing kept."""
        replies = [
            self.client.connection.sendGlobalRequest(b"keepalive@openssh.com", b"", wantReply=True)
            for _ in range(1000)
        ]
        self.harness.flush()
        self.assertEqual({request_result(d) for d in replies}, {"failed"})
        self.assertFalse(self.client.lost.called)

    def test_request_without_want_reply(self) -> None:
        """A global request cut short before its want-reply flag is a protocol error."""
        self.send_raw(connection.MSG_GLOBAL_REQUEST, common.NS(b"tcpip-forward"))
        self.assert_protocol_error("malformed global request")
        self.assertIn("SSH_DECODE_FAILED", self.harness.codes())

    def test_unexpected_reply(self) -> None:
        """A reply to a global request the server never sent is a protocol error."""
        self.send_raw(connection.MSG_REQUEST_SUCCESS, b"")
        self.assert_protocol_error("unexpected global request reply")


class SettingTests(SynchronousTestCase):
    """The limits as ``ssh`` settings: defaults, and values refused with their key."""

    DEFAULTS = {
        "max_channels": 64,
        "max_pending_requests": 32,
        "max_env_variables": 128,
        "max_env_size": 65536,
        "max_packet_size": 262144,
        "max_window_size": 16 * 1024 * 1024,
        "receive_window_size": 2 * 1024 * 1024,
    }

    def test_defaults(self) -> None:
        """The defaults, whether the section is empty or absent."""
        for config in (parse_config({}).ssh, parse_config({"ssh": {}}).ssh, SSHConfig()):
            self.assertEqual({k: getattr(config, k) for k in self.DEFAULTS}, self.DEFAULTS)

    def test_pending_request_default_matches(self) -> None:
        """The bound the request tracker documents is the setting's default."""
        self.assertEqual(SSHConfig().max_pending_requests, MAX_PENDING_REQUESTS)

    def test_values_are_read(self) -> None:
        """Each key sets its field."""
        raw = {
            "maxChannels": 5,
            "maxPendingRequests": 6,
            "maxEnvVariables": 7,
            "maxEnvSize": 8,
            "maxPacketSize": 40000,
            "maxWindowSize": 50000,
            "receiveWindowSize": 60000,
        }
        config = parse_config({"ssh": raw}).ssh
        self.assertEqual(
            [getattr(config, k) for k in self.DEFAULTS], [5, 6, 7, 8, 40000, 50000, 60000]
        )

    def test_invalid_values(self) -> None:
        """Out of range or of the wrong type: an error naming the key."""
        cases = [
            ("maxChannels", -1, "ssh.maxChannels: must be at least 1"),
            ("maxPendingRequests", -5, "ssh.maxPendingRequests: must be at least 1"),
            ("maxEnvVariables", -1, "ssh.maxEnvVariables: must be at least 1"),
            ("maxEnvSize", -1, "ssh.maxEnvSize: must be at least 1"),
            ("maxPacketSize", 1024, "ssh.maxPacketSize: must be at least 32768 (32 KiB)"),
            ("maxWindowSize", 100, "ssh.maxWindowSize: must be at least 32768 (32 KiB)"),
            ("receiveWindowSize", 100, "ssh.receiveWindowSize: must be at least 32768 (32 KiB)"),
            ("maxChannels", "many", "ssh.maxChannels: must be an integer, not a string"),
        ]
        for key, value, message in cases:
            with self.subTest(key=key, value=value):
                with self.assertRaises(ConfigError) as raised:
                    parse_config({"ssh": {key: value}})
                self.assertEqual(str(raised.exception), message)
