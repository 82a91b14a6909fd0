"""``tcpip-forward`` (``ssh -R``) in the SSH layer: the policy, the reply with the
port, ``forwarded-tcpip`` channels to the client, cancelling, and replies in
request order. The backend listens through a scripted forwarding helper; the
real helper, engine and OpenSSH client are in tests.integration.test_forwarding.
"""

from __future__ import annotations

import struct
from typing import Any

import cbor2
from twisted.conch.ssh import common
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwarddial import ForwardHelper
from conch_container.backend.forwardprotocol import (
    Packet,
    PacketType,
    new_connection_payload,
)
from conch_container.config.security import ForwardingSecurityConfig
from tests.backend.test_forwarddial import ScriptedSession
from tests.ssh.harness import ClientChannel, Harness
from tests.ssh.test_direct_tcpip import gateway, with_security


def forward_request(host: bytes = b"localhost", port: int = 0) -> bytes:
    return common.NS(host) + struct.pack(">L", port)


class ScriptedListeners:
    """Gives the fake backend's connections listening through scripted helpers
    (:attr:`helpers`, in the order opened); collects the channels the client gets."""

    def setUp(self) -> None:
        self.helpers: list[ScriptedSession] = []
        self.client_channels: list[tuple[ClientChannel, bytes]] = []

    def with_listener(self, harness: Harness) -> Harness:
        """The fake backend's connections listen through a scripted helper."""
        original = harness.backend.connect

        async def connect(*args: Any, **kwargs: Any) -> Any:
            connection = await original(*args, **kwargs)
            helper = ForwardHelper(harness.reactor, None, harness.log)

            def open_session() -> ScriptedSession:
                session = ScriptedSession()
                self.helpers.append(session)
                return session

            connection.open_listener = lambda request, accepted: helper.listen(
                open_session, request, accepted
            )
            return connection

        harness.backend.connect = connect
        return harness


class RemoteForwardTests(ScriptedListeners, SynchronousTestCase):
    def enabled(self) -> Harness:
        forwarding = ForwardingSecurityConfig(reverse_forwarding_mode="enable")
        return self.with_listener(gateway(with_security(forwarding=forwarding)))

    def login(self, harness: Harness) -> Any:
        client = harness.login()

        def channel_forwarded_tcpip(window: int, max_packet: int, data: bytes) -> ClientChannel:
            channel = ClientChannel(
                remoteWindow=window, remoteMaxPacket=max_packet, conn=client.connection
            )
            self.client_channels.append((channel, data))
            return channel

        client.connection.channel_forwarded_tcpip = channel_forwarded_tcpip
        return client

    def request(self, harness: Harness, client: Any, data: bytes, name: bytes = b"tcpip-forward"):
        reply: Deferred[bytes] = client.connection.sendGlobalRequest(name, data, wantReply=True)
        harness.flush()
        return reply

    def test_refused_by_default(self) -> None:
        harness = self.with_listener(gateway(with_security()))
        client = self.login(harness)
        self.failureResultOf(self.request(harness, client, forward_request(port=8080)))
        [event] = harness.events_with("SECURITY_REVERSE_FORWARDING_REJECTED")
        self.assertEqual((event["host"], event["port"]), ("localhost", 8080))
        self.assertEqual(self.helpers, [])

    def test_forward_with_port_zero(self) -> None:
        """The reply carries the port chosen; a connection there becomes a
        forwarded-tcpip channel naming the forward and the originator."""
        harness = self.enabled()
        client = self.login(harness)
        reply = self.request(harness, client, forward_request())
        self.assertNoResult(reply)
        [helper] = self.helpers
        helper.reply(PacketType.SUCCESS, 0, cbor2.dumps({"BindPort": 40123}))
        harness.flush()
        self.assertEqual(self.successResultOf(reply), struct.pack(">L", 40123))
        [event] = harness.events_with("SSH_FORWARD_LISTEN")
        self.assertEqual((event["port"], event["requestedPort"]), (40123, 0))

        helper.written.clear()
        helper.reply(
            PacketType.NEW_CONNECTION, 1, new_connection_payload("tcp", "", 40123, "10.0.0.5", 999)
        )
        harness.flush()
        [(channel, data)] = self.client_channels
        self.assertEqual(
            data,
            common.NS(b"localhost")
            + struct.pack(">L", 40123)
            + common.NS(b"10.0.0.5")
            + struct.pack(">L", 999),
        )
        self.successResultOf(channel.opened)
        self.assertEqual(helper.packets(), [Packet(PacketType.SUCCESS, 1)])
        channel.write(b"request")
        harness.flush()
        helper.reply(PacketType.DATA, 1, b"answer")
        helper.reply(PacketType.CLOSE_CONNECTION, 1)
        harness.flush()
        self.assertEqual(channel.stdout, b"answer")
        self.assertTrue(channel.eof)
        self.assertIn(Packet(PacketType.DATA, 1, b"request"), helper.packets())
        self.assertTrue(harness.events_with("SSH_FORWARD_ACCEPT"))

    def test_socket(self) -> None:
        """``streamlocal-forward@openssh.com``: the helper listens on a Unix socket;
        connections arrive as forwarded-streamlocal channels naming the path."""
        forwarding = ForwardingSecurityConfig(socket_listen_mode="enable")
        harness = self.with_listener(gateway(with_security(forwarding=forwarding)))
        client = self.login(harness)
        client.connection.channel_forwarded_streamlocal_openssh_com = (
            client.connection.channel_forwarded_tcpip
        )
        reply = self.request(
            harness, client, common.NS(b"/tmp/app.sock"), b"streamlocal-forward@openssh.com"
        )
        [helper] = self.helpers
        [setup] = helper.packets()
        fields = cbor2.loads(setup.payload)
        self.assertEqual(
            (fields["ConnectionType"], fields["Protocol"], fields["BindHost"]),
            (3, "unix", "/tmp/app.sock"),
        )
        helper.reply(PacketType.SUCCESS, 0)
        harness.flush()
        self.assertEqual(self.successResultOf(reply), b"")
        helper.reply(PacketType.NEW_CONNECTION, 1, new_connection_payload("unix", "", 0))
        harness.flush()
        [(channel, data)] = self.client_channels
        self.assertEqual(data, common.NS(b"/tmp/app.sock") + common.NS(b""))
        self.successResultOf(channel.opened)
        cancel = common.NS(b"/tmp/app.sock")
        self.successResultOf(
            self.request(harness, client, cancel, b"cancel-streamlocal-forward@openssh.com")
        )

    def test_socket_refused_by_default(self) -> None:
        forwarding = ForwardingSecurityConfig(reverse_forwarding_mode="enable")
        harness = self.with_listener(gateway(with_security(forwarding=forwarding)))
        client = self.login(harness)
        request = common.NS(b"/tmp/app.sock")
        self.failureResultOf(
            self.request(harness, client, request, b"streamlocal-forward@openssh.com")
        )
        self.assertTrue(harness.events_with("SECURITY_SOCKET_LISTEN_REJECTED"))
        self.assertEqual(self.helpers, [])

    def test_cancel(self) -> None:
        harness = self.enabled()
        client = self.login(harness)
        reply = self.request(harness, client, forward_request(port=8080))
        [helper] = self.helpers
        helper.reply(PacketType.SUCCESS, 0)
        harness.flush()
        self.assertEqual(self.successResultOf(reply), b"")
        cancel = forward_request(port=8080)
        self.successResultOf(self.request(harness, client, cancel, b"cancel-tcpip-forward"))
        self.assertTrue(helper.closed)  # no connection was open: the helper goes at once
        self.failureResultOf(self.request(harness, client, cancel, b"cancel-tcpip-forward"))

    def test_listen_failure(self) -> None:
        harness = self.enabled()
        client = self.login(harness)
        reply = self.request(harness, client, forward_request(port=80))
        self.helpers[0].reply(PacketType.ERROR, 0, b"listen localhost:80: Permission denied")
        harness.flush()
        self.failureResultOf(reply)
        [event] = harness.events_with("SSH_FORWARD_FAILED")
        self.assertIn("Permission denied", event["reason"])

    def test_replies_in_request_order(self) -> None:
        """A refusal that is known at once waits for the slower request before it."""
        harness = self.enabled()
        client = self.login(harness)
        first = self.request(harness, client, forward_request(port=8080))
        second = self.request(harness, client, forward_request(b"not a host!", 8081))
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.helpers[0].reply(PacketType.SUCCESS, 0)
        harness.flush()
        self.successResultOf(first)
        self.failureResultOf(second)

    def test_logout_ends_listeners(self) -> None:
        harness = self.enabled()
        client = self.login(harness)
        self.request(harness, client, forward_request(port=8080))
        self.helpers[0].reply(PacketType.SUCCESS, 0)
        harness.flush()
        client.transport.loseConnection()
        harness.flush()
        self.assertTrue(self.helpers[0].closed)

    def test_client_refuses_channel(self) -> None:
        harness = self.enabled()
        client = self.login(harness)
        client.connection.channel_forwarded_tcpip = None  # Conch refuses unknown types
        self.request(harness, client, forward_request(port=8080))
        helper = self.helpers[0]
        helper.reply(PacketType.SUCCESS, 0)
        helper.written.clear()
        helper.reply(PacketType.NEW_CONNECTION, 1, new_connection_payload("tcp", "", 8080))
        harness.flush()
        self.assertEqual(helper.packets(), [Packet(PacketType.ERROR, 1)])
        self.flushLoggedErrors()  # Conch logs the channel type it does not know
