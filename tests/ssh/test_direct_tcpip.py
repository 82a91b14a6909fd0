"""``direct-tcpip`` channels (``ssh -L``, ``ssh -D``) in the SSH layer, on the fake backend.

The policy refuses them unless ``security.forwarding.forwardingMode`` is
``enable``; a permitted one runs the dialler in the connection's backend,
outside the command policy, takes no requests, and closes without an exit
status when the dialler ends. Data through a real container is tested with
OpenSSH in ``tests/integration/test_forwarding.py``.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
from twisted.conch.ssh import common, connection
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config.security import ForwardingSecurityConfig, SecurityConfig
from conch_container.security.filter import SecurityBackend
from conch_container.ssh.forwarding import BadForwardTarget, dial_command, parse_direct_tcpip
from tests.ssh.harness import ClientChannel, Harness, make_config


class ForwardChannel(ClientChannel):
    name = b"direct-tcpip"


def target(host: bytes = b"127.0.0.1", port: int = 8080) -> bytes:
    return (
        common.NS(host)
        + struct.pack(">L", port)
        + common.NS(b"127.0.0.1")
        + struct.pack(">L", 50000)
    )


def with_security(**security: Any) -> Any:
    config = make_config()
    return attrs.evolve(config, security=attrs.evolve(SecurityConfig(), **security))


def gateway(config: Any) -> Harness:
    """The SSH layer in front of the fake backend behind the security policy, as in twistd."""
    harness = Harness(config)
    harness.factory.backend = SecurityBackend(harness.backend)
    return harness


class DirectTcpipTests(SynchronousTestCase):
    def open(self, harness: Harness, payload: bytes) -> ForwardChannel:
        client = harness.login()
        channel = ForwardChannel(conn=client.connection)
        client.connection.openChannel(channel, payload)
        harness.flush()
        return channel

    def test_refused_by_default(self) -> None:
        """The default policy: administratively prohibited, SECURITY_FORWARDING_REJECTED."""
        harness = gateway(make_config())
        channel = self.open(harness, target())
        self.failureResultOf(channel.opened)
        self.assertEqual(channel.open_failure.args[1], connection.OPEN_ADMINISTRATIVELY_PROHIBITED)
        [event] = harness.events_with("SECURITY_FORWARDING_REJECTED")
        self.assertEqual((event["host"], event["port"]), ("127.0.0.1", 8080))
        self.assertEqual(harness.backend.connections[-1].sessions, {})

    def test_filter_refuses(self) -> None:
        """``filter`` has no list to filter by: refused too."""
        forwarding = ForwardingSecurityConfig(forwarding_mode="filter")
        harness = gateway(with_security(forwarding=forwarding))
        channel = self.open(harness, target())
        self.failureResultOf(channel.opened)
        self.assertEqual(channel.open_failure.args[1], connection.OPEN_ADMINISTRATIVELY_PROHIBITED)

    def enabled(self, **security: Any) -> Harness:
        forwarding = ForwardingSecurityConfig(forwarding_mode="enable")
        return gateway(with_security(forwarding=forwarding, **security))

    def test_enabled_runs_the_dialler(self) -> None:
        """Permitted: the backend runs the dial command, even under a forced command."""
        harness = self.enabled(force_command="/bin/forced")
        channel = self.open(harness, target(b"db.internal", 5432))
        self.successResultOf(channel.opened)
        [session] = harness.backend.connections[-1].sessions.values()
        assert session.program is not None
        self.assertEqual(
            (session.program.kind, session.program.command),
            ("exec", dial_command("db.internal", 5432)),
        )
        [event] = harness.events_with("SSH_FORWARD_DIAL")
        self.assertEqual((event["host"], event["port"]), ("db.internal", 5432))
        self.assertEqual(harness.events_with("SECURITY_EXEC_FORCING_COMMAND"), [])

    def test_dialler_end_closes_without_exit_status(self) -> None:
        """When the dialler ends the channel gets EOF and closes; no exit status."""
        harness = self.enabled()
        channel = self.open(harness, target())
        # The fake backend's shell does not know the dial command: it ends at once.
        harness.flush()
        self.successResultOf(channel.closed_d)
        self.assertTrue(channel.eof)
        self.assertIsNone(channel.exit_status)
        self.assertNotIn("exit-status", channel.order)

    def test_dialler_reports_bounded(self) -> None:
        """A dialler writing to stderr without end causes a few log events, not one per write."""
        harness = self.enabled()
        harness.backend.start_delay = 5.0  # keep the dialler starting
        client = harness.login()
        channel = ForwardChannel(conn=client.connection)
        client.connection.openChannel(channel, target())
        harness.flush()
        [server_channel] = client.server.service.channels.values()
        for _ in range(100):
            server_channel.writeExtended(1, b"nc: connection refused\n")
        reports = [e for e in harness.events_with("SSH_FORWARD_FAILED") if "report" in e]
        self.assertEqual(len(reports), 8)
        self.assertEqual(reports[0]["report"], "nc: connection refused")

    def test_requests_refused(self) -> None:
        """A forwarded connection takes no requests (an exec would run a second program)."""
        harness = self.enabled()
        harness.backend.start_delay = 5.0  # keep the dialler starting
        channel = self.open(harness, target())
        reply = channel.request(b"exec", common.NS(b"id"))
        harness.flush()
        self.failureResultOf(reply)

    def test_cap_on_open_forwards(self) -> None:
        """``maxConnections`` forwards at once; the next is a resource shortage until
        one closes. Forwards do not count against ``ssh.maxChannels``."""
        forwarding = ForwardingSecurityConfig(forwarding_mode="enable", max_connections=2)
        config = attrs.evolve(
            with_security(forwarding=forwarding),
            ssh=attrs.evolve(make_config().ssh, max_channels=1),
        )
        harness = gateway(config)
        harness.backend.start_delay = 5.0  # the diallers keep starting: the channels stay open
        client = harness.login()
        session = harness.open_session(client)
        self.successResultOf(session.opened)
        channels = []
        for _ in range(3):
            channel = ForwardChannel(conn=client.connection)
            client.connection.openChannel(channel, target())
            harness.flush()
            channels.append(channel)
        self.successResultOf(channels[0].opened)
        self.successResultOf(channels[1].opened)
        self.failureResultOf(channels[2].opened)
        self.assertEqual(channels[2].open_failure.args[1], connection.OPEN_RESOURCE_SHORTAGE)
        [event] = harness.events_with("SECURITY_MAX_FORWARDS")
        self.assertEqual(event["maxConnections"], 2)
        channels[0].loseConnection()
        harness.flush()
        again = ForwardChannel(conn=client.connection)
        client.connection.openChannel(again, target())
        harness.flush()
        self.successResultOf(again.opened)
        harness.advance(10)

    def test_bad_target_refused(self) -> None:
        """A host no host could have, or port 0: refused before anything runs."""
        harness = self.enabled()
        for payload in (target(b"a;rm -rf /"), target(port=0), b"\x00\x00"):
            with self.subTest(payload=payload):
                channel = self.open(harness, payload)
                self.failureResultOf(channel.opened)
                self.assertEqual(channel.open_failure.args[1], connection.OPEN_CONNECT_FAILED)
        for connection_ in harness.backend.connections:
            self.assertEqual(connection_.sessions, {})


class StreamlocalChannel(ClientChannel):
    name = b"direct-streamlocal@openssh.com"


def socket_target(path: bytes = b"/run/app.sock") -> bytes:
    return common.NS(path) + common.NS(b"") + struct.pack(">L", 0)


class DirectStreamlocalTests(SynchronousTestCase):
    """``ssh -L port:/path``: a connection to a Unix socket in the container."""

    def open(self, harness: Harness, payload: bytes) -> StreamlocalChannel:
        client = harness.login()
        channel = StreamlocalChannel(conn=client.connection)
        client.connection.openChannel(channel, payload)
        harness.flush()
        return channel

    def test_refused_by_default(self) -> None:
        """socketForwardingMode, not forwardingMode, governs it."""
        forwarding = ForwardingSecurityConfig(forwarding_mode="enable")
        harness = gateway(with_security(forwarding=forwarding))
        channel = self.open(harness, socket_target())
        self.failureResultOf(channel.opened)
        self.assertEqual(channel.open_failure.args[1], connection.OPEN_ADMINISTRATIVELY_PROHIBITED)
        [event] = harness.events_with("SECURITY_SOCKET_FORWARDING_REJECTED")
        self.assertEqual(event["path"], "/run/app.sock")

    def test_enabled_dials_the_socket(self) -> None:
        forwarding = ForwardingSecurityConfig(socket_forwarding_mode="enable")
        harness = gateway(with_security(forwarding=forwarding))
        channel = self.open(harness, socket_target())
        self.successResultOf(channel.opened)
        self.assertEqual(harness.backend.connections[-1].forwards, [("/run/app.sock", 0, True)])

    def test_bad_path_refused(self) -> None:
        forwarding = ForwardingSecurityConfig(socket_forwarding_mode="enable")
        harness = gateway(with_security(forwarding=forwarding))
        for payload in (socket_target(b"relative.sock"), socket_target(b"/" + b"x" * 200), b""):
            with self.subTest(payload=payload):
                channel = self.open(harness, payload)
                self.failureResultOf(channel.opened)
                self.assertEqual(channel.open_failure.args[1], connection.OPEN_CONNECT_FAILED)
        for connection_ in harness.backend.connections:
            self.assertEqual(connection_.forwards, [])


class ParseTests(SynchronousTestCase):
    def test_parse(self) -> None:
        parsed = parse_direct_tcpip(target(b"::1", 22))
        self.assertEqual((parsed.host, parsed.port, parsed.originator_port), ("::1", 22, 50000))

    def test_refusals(self) -> None:
        for host in (b"", b"a b", b"$(id)", b"x" * 300):
            with self.subTest(host=host):
                self.assertRaises(BadForwardTarget, parse_direct_tcpip, target(host))
        self.assertRaises(BadForwardTarget, parse_direct_tcpip, target(port=70000))

    def test_dial_command_quotes(self) -> None:
        """The host reaches the shell quoted (it is checked first, this is a second guard)."""
        self.assertIn("nc fe80::1%eth0 22", dial_command("fe80::1%eth0", 22))
        self.assertIn("socat - TCP:db:5432", dial_command("db", 5432))
        self.assertIn("nc 'a b' 1", dial_command("a b", 1))
