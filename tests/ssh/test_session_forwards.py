"""X11 and agent forwarding on a session channel, in the SSH layer with a
scripted forwarding helper: the policy, the display and socket the program
finds in its environment, xauth, and the channels to the client. The real
helper, engine and clients are in tests.integration.test_forwarding."""

from __future__ import annotations

import struct
from typing import Any

import cbor2
from twisted.conch.ssh import common
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwardprotocol import PacketType, new_connection_payload
from conch_container.config.security import EnvSecurityConfig, ForwardingSecurityConfig
from conch_container.interfaces import ExitStatus
from tests.ssh.harness import ClientChannel, Harness, request_result
from tests.ssh.test_direct_tcpip import gateway, with_security
from tests.ssh.test_remote_forward import ScriptedListeners

COOKIE = "0123456789abcdef0123456789abcdef"


def x11_request(single: bool = False, screen: int = 0) -> bytes:
    return (
        bytes([single])
        + common.NS(b"MIT-MAGIC-COOKIE-1")
        + common.NS(COOKIE.encode())
        + struct.pack(">L", screen)
    )


class SessionForwardTests(ScriptedListeners, SynchronousTestCase):
    def harness(self, **modes: str) -> Harness:
        """Forwarding modes as given; the client may set no variable at all."""
        forwarding = ForwardingSecurityConfig(**modes)
        security = with_security(forwarding=forwarding, env=EnvSecurityConfig(mode="disable"))
        return self.with_listener(gateway(security))

    def login(self, harness: Harness) -> Any:
        client = harness.login()

        def accept(name: str) -> Any:
            def channel(window: int, max_packet: int, data: bytes) -> ClientChannel:
                opened = ClientChannel(
                    remoteWindow=window, remoteMaxPacket=max_packet, conn=client.connection
                )
                self.client_channels.append((opened, data))
                return opened

            return channel

        client.connection.channel_x11 = accept("x11")
        client.connection.channel_auth_agent_openssh_com = accept("agent")
        return client

    def session(self, harness: Harness) -> tuple[Any, ClientChannel]:
        client = self.login(harness)
        return client, harness.open_session(client)

    def env(self, harness: Harness) -> dict[str, str]:
        [backend_session] = harness.backend.connections[-1].sessions.values()
        return dict(backend_session.env)

    def test_x11(self) -> None:
        """The helper gets the display setup with the cookie; xauth installs it;
        DISPLAY is set; a connection to the display is an x11 channel to the client."""
        harness = self.harness(x11_forwarding_mode="enable", forwarding_mode="disable")
        _client, channel = self.session(harness)
        reply = channel.request(b"x11-req", x11_request(single=True, screen=1), want_reply=True)
        harness.flush()
        helper = self.helpers[0]
        [setup] = helper.packets()
        fields = cbor2.loads(setup.payload)
        self.assertEqual(
            (fields["ConnectionType"], fields["SingleConnection"], fields["Screen"]),
            (0, True, "1"),
        )
        self.assertEqual(
            (fields["AuthProtocol"], fields["AuthCookie"]), ("MIT-MAGIC-COOKIE-1", COOKIE)
        )
        helper.reply(PacketType.SUCCESS, 0, cbor2.dumps({"Display": 10}))
        harness.flush()
        xauth = self.helpers[1]
        assert xauth.program is not None
        self.assertIn(f"xauth -q add unix:10.1 MIT-MAGIC-COOKIE-1 {COOKIE}", xauth.program.command)
        self.assertNoResult(reply)
        xauth.io.exited(ExitStatus(code=0))
        harness.flush()
        self.assertEqual(request_result(reply), "ok")
        self.assertEqual(self.env(harness)["DISPLAY"], "localhost:10.1")
        # The cookie never reaches a log line.
        self.assertNotIn(COOKIE, repr(harness.events))

        helper.reply(
            PacketType.NEW_CONNECTION, 1, new_connection_payload("tcp", "", 6010, "127.0.0.1", 4444)
        )
        harness.flush()
        [(x11, data)] = self.client_channels
        self.assertEqual(data, common.NS(b"127.0.0.1") + struct.pack(">L", 4444))
        self.successResultOf(x11.opened)

        # The session ends: so does its display.
        channel.loseConnection()
        harness.flush()
        self.assertTrue(helper.closed)

    def test_x11_refused_by_default(self) -> None:
        harness = self.harness()
        _client, channel = self.session(harness)
        reply = channel.request(b"x11-req", x11_request(), want_reply=True)
        harness.flush()
        self.assertEqual(request_result(reply), "failed")
        self.assertTrue(harness.events_with("SECURITY_X11_REJECTED"))
        self.assertEqual(self.helpers, [])

    def test_agent(self) -> None:
        """A socket only the user can open; SSH_AUTH_SOCK set although the env
        policy refuses every variable the client sends; each connection an
        auth-agent@openssh.com channel."""
        harness = self.harness(agent_forwarding_mode="enable")
        _client, channel = self.session(harness)
        reply = channel.request(b"auth-agent-req@openssh.com", b"", want_reply=True)
        harness.flush()
        helper = self.helpers[0]
        fields = cbor2.loads(helper.packets()[0].payload)
        self.assertEqual((fields["ConnectionType"], fields["Protocol"]), (5, "unix"))
        path = fields["BindHost"]
        self.assertRegex(path, r"^/tmp/ssh-agent-[0-9a-f]{16}\.sock$")
        helper.reply(PacketType.SUCCESS, 0)
        harness.flush()
        self.assertEqual(request_result(reply), "ok")
        self.assertEqual(self.env(harness)["SSH_AUTH_SOCK"], path)
        helper.reply(PacketType.NEW_CONNECTION, 1, new_connection_payload("unix", path, 0))
        harness.flush()
        [(agent, data)] = self.client_channels
        self.assertEqual(data, b"")
        self.successResultOf(agent.opened)

    def test_program_waits_for_the_socket(self) -> None:
        """OpenSSH sends the exec right after an auth-agent-req it wants no reply
        to: the program starts once SSH_AUTH_SOCK can be set."""
        harness = self.harness(agent_forwarding_mode="enable")
        _client, channel = self.session(harness)
        channel.request(b"auth-agent-req@openssh.com", b"", want_reply=False)
        started = channel.request(b"exec", common.NS(b"true"))
        harness.flush()
        [backend_session] = harness.backend.connections[-1].sessions.values()
        self.assertIsNone(backend_session.program)
        self.helpers[0].reply(PacketType.SUCCESS, 0)
        harness.flush()
        self.assertEqual(request_result(started), "ok")
        self.assertIsNotNone(backend_session.program)
        self.assertIn("SSH_AUTH_SOCK", backend_session.env)

    def test_agent_refused_by_default(self) -> None:
        harness = self.harness()
        _client, channel = self.session(harness)
        reply = channel.request(b"auth-agent-req@openssh.com", b"", want_reply=True)
        harness.flush()
        self.assertEqual(request_result(reply), "failed")
        self.assertTrue(harness.events_with("SECURITY_AGENT_FORWARDING_REJECTED"))

    def test_helper_missing(self) -> None:
        harness = self.harness(agent_forwarding_mode="enable")
        _client, channel = self.session(harness)
        reply = channel.request(b"auth-agent-req@openssh.com", b"", want_reply=True)
        harness.flush()
        self.helpers[0].io.exited(ExitStatus(code=127))
        harness.flush()
        self.assertEqual(request_result(reply), "failed")
        self.assertTrue(harness.events_with("SSH_FORWARD_FAILED"))
        self.assertNotIn("SSH_AUTH_SOCK", self.env(harness))
