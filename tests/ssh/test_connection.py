"""Connection-level behaviour of the whole SSH server, in memory."""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common, connection
from twisted.conch.ssh.transport import DISCONNECT_BY_APPLICATION
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.ssh.connection import ServerConnection
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    collecting_log,
    make_config,
    request_result,
)


class OtherChannel(ClientChannel):
    """A channel type the gateway does not serve (X11)."""

    name = b"x11"


class ChannelAndGlobalRequestTests(SynchronousTestCase):
    """What the server refuses on an authenticated connection."""

    def setUp(self) -> None:
        self.harness = Harness()
        self.client = self.harness.login()

    def test_unknown_channel_type_is_refused(self) -> None:
        """X11 channels from the client are refused as an unsupported channel type."""
        channel = OtherChannel(conn=self.client.connection)
        self.client.connection.openChannel(channel, b"\x00" * 8)
        self.harness.flush()
        self.assertIsNotNone(channel.open_failure)
        self.assertEqual(
            channel.open_failure.args,
            (b"unsupported channel type", connection.OPEN_UNKNOWN_CHANNEL_TYPE),
        )
        codes = self.harness.codes()
        self.assertIn("SSH_UNSUPPORTED_CHANNEL_TYPE", codes)
        self.assertIn("SSH_NEW_CHANNEL_REJECTED", codes)
        self.assertNotIn("SSH_NEW_CHANNEL", codes)
        self.failureResultOf(channel.opened)

    def test_unknown_global_request_is_refused(self) -> None:
        """An unsupported global request is answered with failure and logged."""
        d = self.client.connection.sendGlobalRequest(b"no-such-request", b"", wantReply=True)
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        [event] = self.harness.events_with("SSH_UNSUPPORTED_GLOBAL_REQUEST")
        self.assertEqual(event["requestType"], "no-such-request")

    def test_client_keepalive_is_answered_quietly(self) -> None:
        """OpenSSH's ``keepalive@openssh.com`` gets a failure reply and no log line."""
        d = self.client.connection.sendGlobalRequest(b"keepalive@openssh.com", b"", wantReply=True)
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertNotIn("SSH_GLOBAL_REQUEST", self.harness.codes())

    def test_no_new_channels_during_shutdown(self) -> None:
        """Once the gateway stops accepting, new channels are refused."""
        self.harness.registry.accepting = False
        channel = self.harness.open_session(self.client)
        self.assertEqual(
            channel.open_failure.args,
            (b"the server is shutting down", connection.OPEN_ADMINISTRATIVELY_PROHIBITED),
        )
        self.failureResultOf(channel.opened)


class BackendConnectTests(SynchronousTestCase):
    """The backend prepares the connection between authentication and the first channel."""

    def test_backend_refusal_disconnects_with_the_user_message(self) -> None:
        """A backend error ends the connection with its user message, never its detail."""
        harness = Harness()
        harness.backend.connect_error = ContainerSSHError(
            messages.DOCKER_CONTAINER_CREATE_FAILED, GENERIC_USER_MESSAGE, "no such image: x"
        )
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertTrue(client.lost.called)
        self.assertFalse(client.authenticated.called)
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_BY_APPLICATION, GENERIC_USER_MESSAGE)
        )
        [event] = harness.events_with("SSH_BACKEND_REJECTED_HANDSHAKE")
        self.assertEqual(event["reason"], "no such image: x")
        self.assertEqual(client.failures, 1)  # only the "none" probe
        self.assertEqual(harness.registry.pending, 0)

    def test_unexpected_backend_error(self) -> None:
        """An unexpected exception from the backend gives the generic message."""
        harness = Harness()

        async def broken(context: object) -> object:
            raise RuntimeError("bug in backend")

        harness.backend.connect = broken  # type: ignore[method-assign, assignment]
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_BY_APPLICATION, GENERIC_USER_MESSAGE)
        )
        self.assertNotIn("bug in backend", repr(client.disconnect_reason))

    def test_client_leaving_during_backend_setup(self) -> None:
        """A container prepared for a client that already left is removed at once."""
        harness = Harness()
        harness.backend.hold_connects = True
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertEqual(harness.registry.pending, 1)
        client.transport.transport.loseConnection()  # type: ignore[union-attr]
        harness.flush()
        harness.backend.release_connects()
        harness.flush()
        self.assertEqual(harness.backend.created, ["fake0001"])
        self.assertEqual(harness.backend.live_containers, [])
        self.assertEqual(harness.registry.pending, 0)

    def test_no_logins_during_shutdown(self) -> None:
        """A user who authenticates while the gateway shuts down is turned away."""
        harness = Harness()
        harness.registry.accepting = False
        client = harness.connect("user", passwords=["secret"])
        harness.flush()
        self.assertEqual(
            client.disconnect_reason, (DISCONNECT_BY_APPLICATION, GENERIC_USER_MESSAGE)
        )
        self.assertEqual(harness.backend.created, [])


class KeepaliveTests(SynchronousTestCase):
    """Server keepalives (``clientAliveInterval``, ``clientAliveCountMax``)."""

    def test_silent_client_is_disconnected(self) -> None:
        """A client that answers no keepalive is disconnected after ``countMax`` misses."""
        harness = Harness(config=make_config(client_alive_interval=10.0, client_alive_count_max=3))
        client = harness.login()
        client.connection.answer_global_requests = False
        harness.advance(39)
        self.assertFalse(client.lost.called)
        self.assertEqual(len(harness.events_with("SSH_KEEPALIVE_NORESP")), 2)
        harness.advance(2)
        self.assertTrue(client.lost.called)
        self.assertEqual(client.connection.global_requests, [b"keepalive@openssh.com"] * 3)
        self.assertEqual(harness.backend.live_containers, [])

    def test_answering_client_stays(self) -> None:
        """Failure replies count as answers: the connection stays up."""
        harness = Harness(config=make_config(client_alive_interval=10.0, client_alive_count_max=1))
        client = harness.login()
        harness.advance(100)
        self.assertFalse(client.lost.called)
        self.assertEqual(len(client.connection.global_requests), 10)
        self.assertEqual(harness.events_with("SSH_KEEPALIVE_NORESP"), [])

    def test_off_by_default(self) -> None:
        """Without ``clientAliveInterval`` no keepalive is sent."""
        harness = Harness()
        client = harness.login()
        harness.advance(1000)
        self.assertEqual(client.connection.global_requests, [])


class PacketRecorder:
    """What the connection service uses of its transport, with no factory behind it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[dict[str, Any]] = []
        self.log = collecting_log(self.events)
        self.packets: list[tuple[int, bytes]] = []

    def sendPacket(self, messageType: int, payload: bytes) -> None:
        self.packets.append((messageType, payload))


class BuiltWithLimitsTests(SynchronousTestCase):
    """The connection service works from the settings it is built with."""

    def test_keepalives_follow_the_given_settings(self) -> None:
        """Keepalive requests go out at the interval of the settings given to the service."""
        clock = Clock()
        transport = PacketRecorder(clock)
        service = ServerConnection(make_config(client_alive_interval=5.0).ssh)
        service.transport = transport
        service.serviceStarted()
        clock.advance(4)
        self.assertEqual(transport.packets, [])
        clock.advance(1)
        [(kind, payload)] = transport.packets
        self.assertEqual(kind, connection.MSG_GLOBAL_REQUEST)
        self.assertEqual(common.getNS(payload)[0], b"keepalive@openssh.com")
        service.serviceStopped()


class LifecycleLogTests(SynchronousTestCase):
    """Connection lifecycle events."""

    def test_connect_and_disconnect_events(self) -> None:
        """A full connection logs connect, handshake and disconnect with its fields."""
        harness = Harness()
        harness.login()
        harness.disconnect_all()
        codes = harness.codes()
        for code in ("SSH_CONNECTED", "SSH_HANDSHAKE_SUCCESSFUL", "SSH_DISCONNECTED"):
            self.assertIn(code, codes)
        self.assertNotIn("SSH_HANDSHAKE_FAILED", codes)
        [event] = harness.events_with("SSH_DISCONNECTED")
        self.assertEqual(event["username"], "user")
        self.assertEqual(len(event["connectionId"]), 32)

    def test_client_leaving_before_authentication(self) -> None:
        """A client that leaves before authenticating logs a failed handshake."""
        harness = Harness()
        client = harness.connect("user", manual=True)
        harness.flush()
        client.transport.transport.loseConnection()  # type: ignore[union-attr]
        harness.flush()
        self.assertEqual(harness.codes()[-2:], ["SSH_HANDSHAKE_FAILED", "SSH_DISCONNECTED"])

    def test_version_string(self) -> None:
        """The server identifies itself with ``ssh.serverVersion``."""
        harness = Harness(config=make_config(server_version="SSH-2.0-Gateway_1.0"))
        client = harness.login()
        self.assertEqual(client.transport.otherVersionString, b"SSH-2.0-Gateway_1.0")


class ShutdownTests(SynchronousTestCase):
    """Closing every connection when the gateway stops."""

    def test_close_all(self) -> None:
        """``close_all`` disconnects every client with the reason; ``wait_closed`` follows."""
        harness = Harness()
        first, second = harness.login(), harness.login()
        harness.open_session(first)
        self.assertEqual(len(harness.factory.connections), 2)
        waiting = harness.factory.wait_closed()
        self.assertNoResult(waiting)
        self.assertEqual(harness.factory.close_all("The server is shutting down."), 2)
        harness.flush()
        for client in (first, second):
            self.assertEqual(
                client.disconnect_reason,
                (DISCONNECT_BY_APPLICATION, "The server is shutting down."),
            )
        self.successResultOf(waiting)
        self.assertEqual(harness.backend.live_containers, [])
        self.assertEqual(len(harness.events_with("SSH_SHUTDOWN")), 1)
        self.successResultOf(harness.factory.wait_closed())
