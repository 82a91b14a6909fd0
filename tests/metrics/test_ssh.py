"""The SSH server's metrics move with its events (the whole server in memory, fake backend)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.errors import ContainerSSHError
from conch_container.metrics import GatewayMetrics
from tests.metrics.support import sample
from tests.ssh.harness import ClientChannel, Harness, exec_request, request_result


class _MeteredTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.metrics = GatewayMetrics()
        self.harness = Harness(metrics=self.metrics)

    def value(self, name: str, **labels: str) -> float:
        return sample(self.metrics, name, **labels)


class ConnectionTests(_MeteredTestCase):
    def test_login_and_logout(self) -> None:
        """A login counts a connection and a handshake; the gauge follows the connection."""
        self.harness.login()
        self.assertEqual(self.value("containerssh_ssh_connections_total", country="XX"), 1)
        self.assertEqual(self.value("containerssh_ssh_current_connections", country="XX"), 1)
        self.assertEqual(
            self.value("containerssh_ssh_successful_handshakes_total", country="XX"), 1
        )
        self.harness.disconnect_all()
        self.assertEqual(self.value("containerssh_ssh_current_connections", country="XX"), 0)
        self.assertEqual(self.value("containerssh_ssh_failed_handshakes_total", country="XX"), 0)

    def test_failed_login(self) -> None:
        """A connection that closes without authenticating is a failed handshake."""
        client = self.harness.connect(passwords=["wrong"])
        self.harness.flush()
        self.assertFalse(client.authenticated.called)
        self.harness.disconnect_all()
        self.assertEqual(self.value("containerssh_ssh_failed_handshakes_total", country="XX"), 1)
        self.assertEqual(
            self.value("containerssh_ssh_successful_handshakes_total", country="XX"), 0
        )
        self.assertEqual(self.value("containerssh_ssh_current_connections", country="XX"), 0)


class BackendTests(_MeteredTestCase):
    def test_setup_latency_on_the_clock(self) -> None:
        """The set-up time is from authentication until the backend's connection is ready."""
        self.harness.backend.hold_connects = True
        client = self.harness.connect(passwords=["secret"])
        self.harness.flush()
        self.assertEqual(self.value("containerssh_backend_requests_total", backend="docker"), 1)
        self.harness.reactor.advance(2.5)
        self.harness.backend.release_connects()
        self.harness.flush()
        self.assertTrue(client.authenticated.called)
        self.assertEqual(
            self.value("conch_container_backend_setup_seconds_sum", backend="docker"), 2.5
        )
        self.assertEqual(
            self.value("conch_container_backend_setup_seconds_bucket", backend="docker", le="5.0"),
            1,
        )
        self.assertEqual(self.value("containerssh_backend_errors_total", backend="docker"), 0)

    def test_backend_error(self) -> None:
        """A backend that refuses the connection counts an error and no set-up time."""
        self.harness.backend.connect_error = ContainerSSHError(
            messages.DOCKER_CONTAINER_CREATE_FAILED, "no", "the engine said no"
        )
        client = self.harness.connect(passwords=["secret"])
        self.harness.flush()
        self.assertFalse(client.authenticated.called)
        self.assertEqual(self.value("containerssh_backend_requests_total", backend="docker"), 1)
        self.assertEqual(self.value("containerssh_backend_errors_total", backend="docker"), 1)
        self.assertEqual(
            self.value("conch_container_backend_setup_seconds_count", backend="docker"), 0
        )


class ActiveSessionTests(_MeteredTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client = self.harness.login()

    def start(self, command: str) -> ClientChannel:
        channel = self.harness.open_session(self.client)
        d = channel.request(b"exec", exec_request(command))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        return channel

    def test_running_program_counts_until_it_exits(self) -> None:
        """A session is active while its program runs, not before and not after."""
        channel = self.harness.open_session(self.client)
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 0)
        d = channel.request(b"exec", exec_request("sleep 5"))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 1)
        self.harness.advance(5)
        self.assertEqual(channel.exit_status, 0)
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 0)

    def test_closed_channel_stops_counting_once(self) -> None:
        """Closing the connection under running programs brings the gauge back to zero."""
        self.start("sleep 100")
        self.start("sleep 100")
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 2)
        self.harness.disconnect_all()
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 0)

    def test_failed_start_is_not_counted(self) -> None:
        """A program the backend could not start never was an active session."""
        self.harness.backend.start_error = ContainerSSHError(
            messages.DOCKER_EXEC_ATTACH_FAILED, "no", "cannot exec"
        )
        channel = self.harness.open_session(self.client)
        channel.request(b"exec", exec_request("true"))
        self.harness.flush()
        # The start failure reaches the user as exit status 1.
        self.assertEqual(channel.exit_status, 1)
        self.assertEqual(self.value("conch_container_ssh_active_sessions"), 0)
