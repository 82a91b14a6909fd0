"""Session channels against the whole SSH server and the fake backend, in memory."""

from __future__ import annotations

from typing import Any

from twisted.conch.client.knownhosts import KnownHostsFile
from twisted.conch.endpoints import SSHCommandClientEndpoint
from twisted.conch.interfaces import ISession, ISessionSetEnv
from twisted.conch.ssh import common
from twisted.internet.defer import succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.errors import ContainerSSHError
from conch_container.ssh.channel import SessionChannel
from conch_container.ssh.session import ContainerSession
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    env_request,
    exec_request,
    pty_request,
    request_result,
    window_change,
)


class SessionTestCase(SynchronousTestCase):
    """A logged-in client per test."""

    def setUp(self) -> None:
        self.harness = Harness()
        self.client = self.harness.login()

    def open(self, window: int = 0) -> ClientChannel:
        return self.harness.open_session(self.client, window)

    def request(self, channel: ClientChannel, name: bytes, data: bytes = b"") -> Any:
        def replied(result: object) -> object:
            channel.order.append("reply")
            return result

        return channel.request(name, data).addCallback(replied)

    def exec(self, command: str, env: dict[str, str] | None = None) -> ClientChannel:
        channel = self.open()
        for name, value in (env or {}).items():
            self.request(channel, b"env", env_request(name, value))
        d = self.request(channel, b"exec", exec_request(command))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        return channel

    def backend_session(self, index: int = -1) -> Any:
        return self.harness.backend.sessions[index]

    def failed_reasons(self) -> list[str]:
        return [e["reason"] for e in self.harness.events_with("SSH_CHANNEL_REQUEST_FAILED")]


class ExecTests(SessionTestCase):
    """``exec`` requests."""

    def test_echo(self) -> None:
        """The reply comes first, then output, exit status 0, EOF and close (the status
        before EOF, as sshd sends it: see test_exit_status_before_eof)."""
        channel = self.exec('echo "Hello world!"')
        self.assertEqual(channel.stdout, b"Hello world!\n")
        self.assertEqual(channel.exit_status, 0)
        self.assertEqual(channel.order, ["reply", "data", "exit-status", "eof", "closed"])
        self.assertIn("SSH_EXIT", self.harness.codes())
        self.assertEqual(self.backend_session().program.command, 'echo "Hello world!"')

    def test_exit_code(self) -> None:
        """``exit 42`` reaches the client as exit status 42."""
        channel = self.exec("exit 42")
        self.assertEqual(channel.exit_status, 42)

    def test_stderr(self) -> None:
        """Program stderr arrives as extended data."""
        channel = self.exec("no-such-command")
        self.assertEqual(channel.stderr, b"sh: no-such-command: not found\n")
        self.assertEqual(channel.exit_status, 127)

    def test_environment(self) -> None:
        """``env`` requests reach the program; so does what authentication added."""
        channel = self.exec('echo "$FOO"; printenv FROM_AUTH', env={"FOO": "Hello world!"})
        self.assertEqual(channel.stdout, b"Hello world!\npassword\n")

    def test_refused_environment_variable(self) -> None:
        """A variable the backend refuses is answered with failure, and nothing breaks."""
        self.harness.backend.forbidden_env = {"LD_PRELOAD"}
        channel = self.open()
        refused = self.request(channel, b"env", env_request("LD_PRELOAD", "/x.so"))
        accepted = self.request(channel, b"env", env_request("OK", "1"))
        self.harness.flush()
        self.assertEqual(request_result(refused), "failed")
        self.assertEqual(request_result(accepted), "ok")
        self.assertEqual(self.failed_reasons(), ["setting LD_PRELOAD is not allowed"])
        self.assertNotIn("UNKNOWN_ERROR", self.harness.codes())

    def test_environment_after_start_is_refused(self) -> None:
        """``env`` after the program started is refused."""
        channel = self.exec("cat")
        d = self.request(channel, b"env", env_request("FOO", "bar"))
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertEqual(self.failed_reasons(), ["env after the program was started"])

    def test_second_program_is_refused(self) -> None:
        """A channel runs one program."""
        channel = self.exec("cat")
        d = self.request(channel, b"exec", exec_request("true"))
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertEqual(self.failed_reasons(), ["program already running"])

    def test_stdin_until_eof(self) -> None:
        """Client stdin reaches the program; EOF closes its stdin."""
        channel = self.exec("cat")
        channel.write(b"hello ")
        channel.write(b"world\n")
        assert channel.conn is not None
        channel.conn.sendEOF(channel)
        self.harness.flush()
        self.assertEqual(channel.stdout, b"hello world\n")
        self.assertEqual(channel.exit_status, 0)
        self.assertTrue(self.backend_session().stdin_closed)

    def test_stdin_is_buffered_until_the_program_runs(self) -> None:
        """Stdin and EOF sent while the backend is still starting arrive once it runs."""
        self.harness.backend.start_delay = 2.0
        channel = self.open()
        d = self.request(channel, b"exec", exec_request("cat"))
        channel.write(b"early bytes")
        assert channel.conn is not None
        channel.conn.sendEOF(channel)
        self.harness.flush()
        self.assertEqual(request_result(d), "pending")
        self.assertEqual(channel.stdout, b"")
        self.harness.advance(2)
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(channel.stdout, b"early bytes")
        self.assertEqual(channel.exit_status, 0)

    def test_start_failure(self) -> None:
        """A start failure: the user message on stderr, exit status 1, the channel closed."""
        self.harness.backend.start_error = ContainerSSHError(
            messages.DOCKER_EXEC_CREATE_FAILED, "Cannot run your program.", "engine said no"
        )
        channel = self.open()
        d = self.request(channel, b"exec", exec_request("true"))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(channel.stderr, b"Cannot run your program.\n")
        self.assertEqual(channel.exit_status, 1)
        self.assertEqual(channel.order, ["reply", "ext", "exit-status", "eof", "closed"])
        self.assertIn("DOCKER_EXEC_CREATE_FAILED", self.harness.codes())
        self.assertEqual(self.failed_reasons(), ["program start failed: engine said no"])
        self.assertTrue(self.backend_session().closed)

    def test_undecodable_payload(self) -> None:
        """A truncated payload is refused and logged as a decode failure."""
        channel = self.open()
        d = self.request(channel, b"exec", b"\x00\x00\x00\x10abc")
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertIn("SSH_DECODE_FAILED", self.harness.codes())
        self.assertEqual(self.failed_reasons(), ["failed to unmarshal payload"])

    def test_forwarding_requests_refused(self) -> None:
        """Agent forwarding and X11 requests fail on a backend that cannot listen,
        and an X11 request with a protocol no X server knows fails before that."""
        channel = self.open()
        agent = self.request(channel, b"auth-agent-req@openssh.com")
        x11 = self.request(
            channel, b"x11-req", b"\x00" + common.NS(b"MIT") + common.NS(b"00") + b"\x00" * 4
        )
        self.harness.flush()
        self.assertEqual((request_result(agent), request_result(x11)), ("failed", "failed"))
        self.assertEqual(
            self.failed_reasons(),
            [
                "this backend cannot listen in its containers",
                "unknown X11 authentication protocol 'MIT'",
            ],
        )

    def test_conch_command_endpoint(self) -> None:
        """Conch's own command endpoint logs in and runs a command through the server."""
        received: list[bytes] = []

        class Collect(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        class TrustingUI:
            def prompt(self, text: bytes) -> Any:
                return succeed(True)

            def warn(self, text: bytes) -> None:
                pass

        reactor = self.harness.reactor
        endpoint = SSHCommandClientEndpoint.newConnection(
            reactor,
            b"echo via endpoint",
            b"user",
            b"server.example",
            22,
            password=b"secret",
            knownHosts=KnownHostsFile(FilePath(self.mktemp())),  # type: ignore[arg-type]
            ui=TrustingUI(),  # type: ignore[arg-type]
        )
        connected = endpoint.connect(Factory.forProtocol(Collect))
        pump = self.harness.connect_protocol(reactor.tcpClients[-1][2].buildProtocol(None))
        pump.flush()
        self.successResultOf(connected)
        self.assertEqual(b"".join(received), b"via endpoint\n")


class TerminalTests(SessionTestCase):
    """``pty-req``, ``shell`` and ``window-change``."""

    def shell(self) -> ClientChannel:
        channel = self.open()
        self.request(channel, b"pty-req", pty_request("xterm", 80, 25))
        d = self.request(channel, b"shell")
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        return channel

    def type(self, channel: ClientChannel, line: bytes) -> bytes:
        before = len(channel.stdout)
        channel.write(line)
        self.harness.flush()
        return channel.stdout[before:]

    def test_shell_with_terminal(self) -> None:
        """A shell on a terminal: TERM, the size, resizes, and the exit status."""
        channel = self.shell()
        self.assertEqual(channel.stdout, b"$ ")
        self.assertIn(b"80\r\n", self.type(channel, b"tput cols\n"))
        self.assertIn(b"25\r\n", self.type(channel, b"tput lines\n"))
        self.assertIn(b"xterm\r\n", self.type(channel, b"printenv TERM\n"))
        d = self.request(channel, b"window-change", window_change(120, 40))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(self.backend_session().resizes, [(120, 40)])
        self.assertIn(b"120\r\n", self.type(channel, b"tput cols\n"))
        self.type(channel, b"exit 3\n")
        self.assertEqual(channel.exit_status, 3)
        self.assertEqual(channel.order[-3:], ["exit-status", "eof", "closed"])

    def test_window_change_before_the_program_is_applied_at_start(self) -> None:
        """A resize between ``pty-req`` and ``shell`` is applied once the shell runs."""
        channel = self.open()
        self.request(channel, b"pty-req", pty_request("xterm", 80, 25))
        early = self.request(channel, b"window-change", window_change(100, 30))
        self.request(channel, b"shell")
        self.harness.flush()
        self.assertEqual(request_result(early), "ok")
        self.assertEqual(self.backend_session().resizes, [(100, 30)])

    def test_window_change_without_program_or_terminal_is_refused(self) -> None:
        """Without a terminal and a program there is nothing to resize."""
        channel = self.open()
        d = self.request(channel, b"window-change", window_change(100, 30))
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertEqual(self.failed_reasons(), ["no program running"])


class SignalTests(SessionTestCase):
    """``signal`` requests."""

    def test_signal_reaches_the_backend(self) -> None:
        """A signal is delivered to the program; its exit signal reaches the client."""
        channel = self.exec("sleep 100")
        d = self.request(channel, b"signal", common.NS(b"TERM"))
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(self.backend_session().signals, ["TERM"])
        self.assertEqual(channel.exit_signal, ("TERM", False, ""))
        self.assertEqual(channel.exit_status, None)
        [event] = self.harness.events_with("SSH_EXIT_SIGNAL")
        self.assertEqual(event["signal"], "TERM")

    def test_signal_without_program_is_refused(self) -> None:
        """A signal before any program runs is refused."""
        channel = self.open()
        d = self.request(channel, b"signal", common.NS(b"INT"))
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertEqual(self.failed_reasons(), ["no program running"])


class SubsystemTests(SessionTestCase):
    """``subsystem`` requests go to the backend."""

    def test_configured_subsystem(self) -> None:
        """A subsystem the backend serves runs there (never in Conch)."""
        channel = self.open()
        d = self.request(channel, b"subsystem", common.NS(b"echo"))
        channel.write(b"ping")
        assert channel.conn is not None
        channel.conn.sendEOF(channel)
        self.harness.flush()
        self.assertEqual(request_result(d), "ok")
        self.assertEqual(channel.stdout, b"ping")
        self.assertEqual(channel.exit_status, 0)

    def test_unknown_subsystem(self) -> None:
        """A subsystem the backend does not serve is refused with a failure reply, logged."""
        channel = self.open()
        d = self.request(channel, b"subsystem", common.NS(b"sftp"))
        self.harness.flush()
        self.assertEqual(request_result(d), "failed")
        self.assertEqual(channel.stderr, b"")
        self.assertIsNone(channel.exit_status)
        self.assertIn("DOCKER_SUBSYSTEM_NOT_SUPPORTED", self.harness.codes())


class FlowControlTests(SessionTestCase):
    """Output never piles up in the server while the client does not read."""

    def test_backend_is_paused_while_the_window_is_full(self) -> None:
        """With the client's window full the backend is paused; reading resumes it."""
        size = 1_000_000
        self.client.connection.hold_window = True
        channel = self.open(window=65536)
        self.request(channel, b"exec", exec_request(f"head -c {size} /dev/zero"))
        self.harness.flush()
        server_channel = self.client.server.service.channels[0]
        backend = self.backend_session()
        self.assertEqual(len(channel.stdout), 65536)
        self.assertTrue(backend._paused)
        self.assertLessEqual(len(server_channel.buf), 32768)
        for _ in range(100):
            if channel.exit_status is not None:
                break
            self.client.connection.release_window(channel)
            self.client.connection.hold_window = True
            self.harness.flush()
            self.assertLessEqual(len(server_channel.buf), 32768)
        self.assertEqual(len(channel.stdout), size)
        self.assertEqual(channel.exit_status, 0)


class LifecycleTests(SessionTestCase):
    """Closing channels and connections releases the backend's resources."""

    def test_client_closing_the_channel_closes_the_backend_session(self) -> None:
        """The program is stopped when the client closes its channel."""
        channel = self.exec("sleep 100")
        channel.loseConnection()
        self.harness.flush()
        self.assertTrue(self.backend_session().closed)
        self.assertEqual(self.backend_session().exit_status, None)

    def test_disconnect_removes_the_container(self) -> None:
        """When the client goes away, its sessions close and its container is removed."""
        self.exec("sleep 100")
        self.assertEqual(len(self.harness.backend.live_containers), 1)
        self.harness.disconnect_all()
        self.assertEqual(self.harness.backend.live_containers, [])
        self.assertTrue(self.backend_session().closed)
        self.assertEqual(self.harness.registry.pending, 0)
        self.assertIn("SSH_DISCONNECTED", self.harness.codes())
        self.assertNotIn("SSH_HANDSHAKE_FAILED", self.harness.codes())

    def test_one_session_object_per_channel(self) -> None:
        """Each session channel has its own session, with its own backend session."""
        self.open()
        self.open()
        self.harness.flush()
        first, second = self.client.server.service.channels.values()
        self.assertIsInstance(first, SessionChannel)
        self.assertIsInstance(first.session, ContainerSession)
        self.assertIsNot(first.session, second.session)
        self.assertEqual(len(self.harness.backend.sessions), 2)

    def test_avatar_is_not_a_conch_session(self) -> None:
        """Sessions come with their channels only: the avatar does not adapt to ``ISession``."""
        avatar = self.client.server.avatar
        self.assertIsNone(ISession(avatar, None))
        self.assertIsNone(ISessionSetEnv(avatar, None))

    def test_channel_ids_in_logs(self) -> None:
        """Channel events carry the channel id and the connection's fields."""
        self.exec("true")
        [event] = self.harness.events_with("SSH_NEW_CHANNEL")
        self.assertEqual(event["channelId"], 0)
        self.assertEqual(event["username"], "user")
        self.assertEqual(event["remoteAddr"], "198.51.100.7:50123")
