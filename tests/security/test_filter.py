"""The security filter around a backend: the same interfaces, each request checked first."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.backend.forwardlisten import ListenRequest
from conch_container.backend.forwardprotocol import ConnectionType
from conch_container.config import parse_config
from conch_container.deferreds import as_deferred
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import (
    ConnectionContext,
    ExitStatus,
    IBackendConnection,
    IBackendSession,
    IContainerBackend,
    ProgramRequest,
    PtyRequest,
)
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata
from conch_container.security import SecurityBackend, SecurityConnection
from conch_container.security.policy import SecurityPolicy
from conch_container.testing.backend import FakeBackend
from conch_container.testing.conformance import BackendConformanceMixin
from conch_container.testing.sessionio import RecordingSessionIO


def context(
    security: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    username: str = "user",
) -> ConnectionContext:
    """A connection context whose configuration has the given ``security`` section."""
    metadata = ConnectionMetadata(
        connection_id="0123456789abcdef0123456789abcdef",
        remote_address="127.0.0.1:2222",
        username=username,
        authenticated_username=username,
    )
    observer = cast(ILogObserver, events.append) if events is not None else None
    log = CodeLogger("tests", {"connectionId": metadata.connection_id}, observer=observer)
    config = parse_config({"security": security or {}})
    return ConnectionContext(metadata=metadata, config=config, log=log)


class FilterTestCase(SynchronousTestCase):
    """A fake backend behind the filter, on a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.backend = FakeBackend(self.clock)
        self.filter = SecurityBackend(self.backend)
        self.events: list[dict[str, Any]] = []

    def connect(self, security: dict[str, Any] | None = None) -> SecurityConnection:
        d = as_deferred(self.filter.connect(context(security, self.events)))
        return cast(SecurityConnection, self.successResultOf(d))

    def session(self, security: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """A filtered session and the fake session behind it."""
        connection = self.connect(security)
        filtered = connection.open_session(1)
        return filtered, self.backend.sessions[-1]

    def run_program(self, session: Any, program: ProgramRequest) -> RecordingSessionIO:
        io = RecordingSessionIO()
        started = as_deferred(session.start(program, io))
        self.clock.advance(0)
        self.successResultOf(started)
        self.clock.advance(1)
        return io

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]

    def events_with(self, code: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("code") == code.code]


class InterfaceTests(FilterTestCase):
    def test_provides_the_backend_interfaces(self) -> None:
        """The backend, its connections and sessions provide the interfaces they wrap."""
        verifyObject(IContainerBackend, self.filter)
        connection = self.connect()
        verifyObject(IBackendConnection, connection)
        verifyObject(IBackendSession, connection.open_session(1))
        self.assertEqual(self.filter.name, "fake")

    def test_transparent_when_everything_is_enabled(self) -> None:
        """With no security settings, a program runs exactly as the backend runs it."""
        session, fake = self.session()
        session.set_env("FOO", "bar")
        session.set_pty(PtyRequest("xterm", 80, 25))
        io = self.run_program(session, ProgramRequest("exec", 'echo "$FOO"'))
        self.assertEqual(io.stdout_data, b"bar\r\n")
        self.assertEqual(fake.program, ProgramRequest("exec", 'echo "$FOO"'))
        self.assertEqual(fake.env["FOO"], "bar")
        self.assertNotIn("SECURITY_EXEC_FORCING_COMMAND", self.codes())

    def test_close_closes_the_backend(self) -> None:
        """Closing the filtered connection closes the backend's connection and container."""
        connection = self.connect()
        connection.open_session(1)
        self.successResultOf(as_deferred(connection.close()))
        self.assertEqual(self.backend.live_containers, [])

    def test_policy_per_connection(self) -> None:
        """Each connection follows the ``security`` section of its own context's configuration."""
        strict = self.connect({"command": {"mode": "disable"}})
        lenient = self.connect()
        self.assertRaises(
            RequestRejected,
            strict.open_session(1).start,
            ProgramRequest("exec", "true"),
            RecordingSessionIO(),
        )
        io = self.run_program(lenient.open_session(1), ProgramRequest("exec", "true"))
        self.assertEqual(io.status, ExitStatus(code=0))


class EnvTests(FilterTestCase):
    def test_denied_variable_not_set(self) -> None:
        """A denied name is refused and logged by name; its value goes nowhere."""
        session, fake = self.session({"env": {"deny": ["LD_PRELOAD"]}})
        with self.assertRaises(RequestRejected) as caught:
            session.set_env("LD_PRELOAD", "/tmp/evil-value.so")
        self.assertEqual(caught.exception.code, messages.SECURITY_ENV_REJECTED)
        session.set_env("OK", "1")
        self.assertNotIn("LD_PRELOAD", fake.env)
        self.assertEqual(fake.env["OK"], "1")
        [event] = self.events_with(messages.SECURITY_ENV_REJECTED)
        self.assertEqual(event["name"], "LD_PRELOAD")
        self.assertEqual(event["channelId"], 1)
        self.assertNotIn("evil-value", repr(self.events))

    def test_terminal_type_is_part_of_the_terminal(self) -> None:
        """TERM set for an accepted pty-req passes even when no variable may be set."""
        session, fake = self.session({"env": {"mode": "disable"}})
        self.assertRaises(RequestRejected, session.set_env, "TERM", "xterm")
        session.set_pty(PtyRequest("vt100", 80, 25))
        session.set_env("TERM", "vt100")
        self.assertEqual(fake.env["TERM"], "vt100")
        self.assertRaises(RequestRejected, session.set_env, "TERM", "xterm")


class ProgramTests(FilterTestCase):
    def test_refused_program_starts_nothing(self) -> None:
        """A refused exec, shell or subsystem raises before the backend sees it."""
        security = {
            "command": {"mode": "filter", "allow": ["ls"]},
            "shell": {"mode": "disable"},
            "subsystem": {"mode": "disable"},
        }
        cases = [
            (ProgramRequest("exec", "id"), messages.SECURITY_EXEC_REJECTED),
            (ProgramRequest("shell"), messages.SECURITY_SHELL_REJECTED),
            (ProgramRequest("subsystem", "sftp"), messages.SECURITY_SUBSYSTEM_REJECTED),
        ]
        for program, code in cases:
            session, fake = self.session(security)
            with self.assertRaises(RequestRejected) as caught:
                session.start(program, RecordingSessionIO())
            self.assertEqual(caught.exception.code, code)
            self.assertIsNone(fake.program)
            self.assertEqual(len(self.events_with(code)), 1)

    def test_allowed_command_runs(self) -> None:
        """The exact command on the allow list runs."""
        session, _ = self.session({"command": {"mode": "filter", "allow": ["echo hi"]}})
        io = self.run_program(session, ProgramRequest("exec", "echo hi"))
        self.assertEqual(io.stdout_data, b"hi\n")

    def test_refused_pty(self) -> None:
        """A refused terminal leaves the session without one; the program still runs."""
        session, fake = self.session({"tty": {"mode": "disable"}})
        self.assertRaises(RequestRejected, session.set_pty, PtyRequest("xterm", 80, 25))
        self.assertIsNone(fake.pty)
        self.assertEqual(len(self.events_with(messages.SECURITY_TTY_REJECTED)), 1)
        io = self.run_program(session, ProgramRequest("exec", "echo ok"))
        self.assertEqual(io.stdout_data, b"ok\n")


class ForceCommandTests(FilterTestCase):
    FORCED = {"forceCommand": 'echo "forced:$SSH_ORIGINAL_COMMAND"'}

    def test_exec(self) -> None:
        """An exec runs the forced command, which finds the original in SSH_ORIGINAL_COMMAND."""
        session, fake = self.session(self.FORCED)
        io = self.run_program(session, ProgramRequest("exec", "ls -l"))
        self.assertEqual(io.stdout_data, b"forced:ls -l\n")
        self.assertEqual(fake.program, ProgramRequest("exec", self.FORCED["forceCommand"]))
        [event] = self.events_with(messages.SECURITY_EXEC_FORCING_COMMAND)
        self.assertEqual(event["requestType"], "exec")

    def test_subsystem(self) -> None:
        """A subsystem runs the forced command with its name in SSH_ORIGINAL_COMMAND."""
        session, fake = self.session(self.FORCED)
        io = self.run_program(session, ProgramRequest("subsystem", "sftp"))
        self.assertEqual(io.stdout_data, b"forced:sftp\n")
        self.assertEqual(fake.env["SSH_ORIGINAL_COMMAND"], "sftp")

    def test_shell(self) -> None:
        """A shell runs the forced command without SSH_ORIGINAL_COMMAND."""
        session, fake = self.session(self.FORCED)
        io = self.run_program(session, ProgramRequest("shell"))
        self.assertEqual(io.stdout_data, b"forced:\n")
        self.assertNotIn("SSH_ORIGINAL_COMMAND", fake.env)
        self.assertEqual(fake.program.kind, "exec")

    def test_client_cannot_set_the_original_command(self) -> None:
        """With a forced command, an ``env`` request for SSH_ORIGINAL_COMMAND is refused."""
        session, _ = self.session(self.FORCED)
        self.assertRaises(RequestRejected, session.set_env, "SSH_ORIGINAL_COMMAND", "rm -rf /")
        io = self.run_program(session, ProgramRequest("shell"))
        self.assertEqual(io.stdout_data, b"forced:\n")

    def test_policy_checks_the_original_request(self) -> None:
        """The command policy still judges the client's command; a refused one forces nothing."""
        security = {**self.FORCED, "command": {"mode": "filter", "allow": ["status"]}}
        session, fake = self.session(security)
        self.assertRaises(
            RequestRejected, session.start, ProgramRequest("exec", "id"), RecordingSessionIO()
        )
        self.assertIsNone(fake.program)
        self.assertNotIn("SECURITY_EXEC_FORCING_COMMAND", self.codes())
        session, fake = self.session(security)
        io = self.run_program(session, ProgramRequest("exec", "status"))
        self.assertEqual(io.stdout_data, b"forced:status\n")

    def test_setenv_failure(self) -> None:
        """When the backend refuses SSH_ORIGINAL_COMMAND, the start fails and nothing runs."""
        self.backend.forbidden_env = {"SSH_ORIGINAL_COMMAND"}
        session, fake = self.session(self.FORCED)
        with self.assertRaises(ContainerSSHError) as caught:
            session.start(ProgramRequest("exec", "ls"), RecordingSessionIO())
        error = caught.exception
        self.assertNotIsInstance(error, RequestRejected)
        self.assertEqual(error.code, messages.SECURITY_EXEC_FAILED_SETENV)
        self.assertEqual(error.user_message, "Could not execute program.")
        self.assertIsNone(fake.program)


class SignalTests(FilterTestCase):
    def test_refused_signal_not_delivered(self) -> None:
        """A denied signal is refused and logged; the program keeps running; others arrive."""
        session, fake = self.session({"signal": {"deny": ["KILL"]}})
        io = RecordingSessionIO()
        self.successResultOf(as_deferred(session.start(ProgramRequest("exec", "sleep 100"), io)))
        self.assertRaises(RequestRejected, session.signal, "KILL")
        self.assertEqual(fake.signals, [])
        self.assertTrue(fake.running)
        [event] = self.events_with(messages.SECURITY_SIGNAL_REJECTED)
        self.assertEqual(event["signal"], "KILL")
        self.successResultOf(as_deferred(session.signal("TERM")))
        self.assertEqual(fake.signals, ["TERM"])

    def test_window_change_never_filtered(self) -> None:
        """Resizes pass even when everything else is disabled."""
        security = {
            "defaultMode": "disable",
            "tty": {"mode": "enable"},
            "command": {"mode": "enable"},
        }
        session, fake = self.session(security)
        session.set_pty(PtyRequest("xterm", 80, 25))
        io = RecordingSessionIO()
        self.successResultOf(as_deferred(session.start(ProgramRequest("exec", "sleep 100"), io)))
        self.successResultOf(as_deferred(session.resize(120, 40, 0, 0)))
        self.assertEqual(fake.resizes, [(120, 40)])


class MaxSessionsTests(FilterTestCase):
    def test_concurrent_limit(self) -> None:
        """10 sessions open; the 11th is refused; after one closes, a new one opens."""
        connection = self.connect({"maxSessions": 10})
        sessions = [connection.open_session(i) for i in range(10)]
        self.assertEqual(connection.open_sessions, 10)
        with self.assertRaises(RequestRejected) as caught:
            connection.open_session(10)
        self.assertEqual(caught.exception.code, messages.SECURITY_MAX_SESSIONS)
        self.assertEqual(len(self.backend.sessions), 10)
        [event] = self.events_with(messages.SECURITY_MAX_SESSIONS)
        self.assertEqual(event["channelId"], 10)
        self.successResultOf(as_deferred(sessions[3].close()))
        self.assertEqual(connection.open_sessions, 9)
        connection.open_session(11)
        self.assertRaises(RequestRejected, connection.open_session, 12)

    def test_close_counts_once(self) -> None:
        """Closing a session twice frees one place, not two."""
        connection = self.connect({"maxSessions": 1})
        session = connection.open_session(0)
        self.successResultOf(as_deferred(session.close()))
        self.successResultOf(as_deferred(session.close()))
        connection.open_session(1)
        self.assertRaises(RequestRejected, connection.open_session, 2)

    def test_ended_program_still_counts_until_close(self) -> None:
        """A session counts while its channel is open, even after its program ended."""
        connection = self.connect({"maxSessions": 1})
        session = connection.open_session(0)
        self.run_program(session, ProgramRequest("exec", "true"))
        self.assertRaises(RequestRejected, connection.open_session, 1)

    def test_unlimited(self) -> None:
        """``-1`` allows any number of sessions."""
        connection = self.connect({"maxSessions": -1})
        for i in range(100):
            connection.open_session(i)
        self.assertEqual(connection.open_sessions, 100)

    def test_limit_per_connection(self) -> None:
        """Each connection has its own count."""
        first = self.connect({"maxSessions": 1})
        second = self.connect({"maxSessions": 1})
        first.open_session(0)
        second.open_session(0)
        self.assertRaises(RequestRejected, first.open_session, 1)


class FilteredFakeBackendConformanceTests(BackendConformanceMixin, TestCase):
    """The backend conformance suite passes through the filter with the default policy."""

    timeout = 10

    def setUp(self) -> None:
        self.clock = Clock()

    def make_backend(self) -> SecurityBackend:
        self.fake = FakeBackend(self.clock)
        self.addCleanup(lambda: self.assertEqual(self.fake.errors, []))
        return SecurityBackend(self.fake)

    def make_context(self) -> ConnectionContext:
        return context()

    def settle(self, d: Deferred[Any]) -> Deferred[Any]:
        for _ in range(1000):
            if d.called:
                break
            self.clock.advance(0.01)
        self.assertTrue(d.called, "nothing more will happen on the fake clock")
        return d

    async def leftovers(self, backend: Any, context: Any) -> list[str]:
        return self.fake.live_containers


class _Listening:
    """A backend connection that hands every accepted connection to the gateway."""

    def __init__(self) -> None:
        self.on_connection: Any = None

    def open_listener(self, request: Any, on_connection: Any) -> object:
        self.on_connection = on_connection
        return object()


class _Accepted:
    def __init__(self) -> None:
        self.closed = 0
        self.listener_port = 8080

    def close(self) -> None:
        self.closed += 1


class AcceptedConnectionLimitTests(SynchronousTestCase):
    """Connections the container accepts share ``maxConnections`` with ``ssh -L``."""

    def test_beyond_the_limit_closed_at_once(self) -> None:
        events: list[dict[str, Any]] = []
        ctx = context(
            {"forwarding": {"reverseForwardingMode": "enable", "maxConnections": 2}}, events
        )
        backend = _Listening()
        policy = SecurityPolicy.from_config(ctx.config.security)
        connection = SecurityConnection(backend, policy, ctx.log)
        handed: list[Any] = []
        request = ListenRequest(ConnectionType.PORT_FORWARD, "127.0.0.1", 0)
        connection.open_listener(request, handed.append)
        first, second, third = _Accepted(), _Accepted(), _Accepted()
        for accepted in (first, second, third):
            backend.on_connection(accepted)
        self.assertEqual(len(handed), 2)
        self.assertEqual(third.closed, 1)
        self.assertEqual(handed[0].listener_port, 8080)
        self.assertIn(messages.SECURITY_MAX_FORWARDS.code, [e.get("code") for e in events])
        # A channel that closes frees its place.
        handed[0].close()
        self.assertEqual(first.closed, 1)
        fourth = _Accepted()
        backend.on_connection(fourth)
        self.assertEqual(len(handed), 3)
        self.assertEqual(fourth.closed, 0)
