"""The security policy's decisions: each rule as a table of request, mode and lists."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import parse_config
from conch_container.errors import RequestRejected
from conch_container.interfaces import ProgramRequest
from conch_container.security.policy import SecurityPolicy, effective_mode


def policy(security: dict[str, Any]) -> SecurityPolicy:
    """The policy a ``security`` section (as written in the YAML file) describes."""
    return SecurityPolicy.from_config(parse_config({"security": security}).security)


def verdict(rejection: RequestRejected | None) -> str:
    return "allowed" if rejection is None else "refused"


class TableTestCase(SynchronousTestCase):
    def check_table(self, rows: list[tuple[Any, ...]], decide: Any) -> None:
        """Every row's last element is the expected verdict for the row's other elements."""
        for *row, expected in rows:
            with self.subTest(row=row):
                self.assertEqual(verdict(decide(*row)), expected, row)


class ModeTests(SynchronousTestCase):
    def test_fallback(self) -> None:
        """An unset mode falls back to ``defaultMode``, and then to ``enable``."""
        self.assertEqual(effective_mode("", ""), "enable")
        self.assertEqual(effective_mode("", "disable"), "disable")
        self.assertEqual(effective_mode("filter", "disable"), "filter")

    def test_default_mode_applies_to_every_unset_type(self) -> None:
        """``defaultMode: disable`` refuses every request type whose mode is unset."""
        p = policy({"defaultMode": "disable"})
        self.assertIsNotNone(p.check_env("FOO"))
        self.assertIsNotNone(p.check_tty())
        self.assertIsNotNone(p.check_signal("TERM"))
        for kind in ("shell", "exec", "subsystem"):
            self.assertIsNotNone(p.check_program(ProgramRequest(kind, "x")), kind)  # type: ignore[arg-type]

    def test_own_mode_wins_over_default(self) -> None:
        """A request type's own mode overrides ``defaultMode``."""
        p = policy({"defaultMode": "disable", "command": {"mode": "enable"}})
        self.assertIsNone(p.check_program(ProgramRequest("exec", "ls")))
        self.assertIsNotNone(p.check_program(ProgramRequest("shell")))

    def test_everything_allowed_by_default(self) -> None:
        """An empty ``security`` section permits everything, without a session limit."""
        p = policy({})
        self.assertIsNone(p.check_env("LD_PRELOAD"))
        self.assertIsNone(p.check_tty())
        self.assertIsNone(p.check_signal("KILL"))
        self.assertIsNone(p.check_new_session(10_000))
        self.assertIsNone(p.max_sessions)
        self.assertEqual(p.force_command, "")


class EnvTests(TableTestCase):
    def test_table(self) -> None:
        """enable: all but ``deny``; filter: only ``allow``; disable: none."""
        rows = [
            # mode, defaultMode, allow, deny, name, verdict
            ("", "", [], [], "FOO", "allowed"),
            ("", "", [], ["LD_PRELOAD"], "LD_PRELOAD", "refused"),
            ("enable", "", [], ["LD_PRELOAD"], "LD_PRELOAD", "refused"),
            ("enable", "", [], ["LD_PRELOAD"], "FOO", "allowed"),
            ("enable", "", ["FOO"], [], "BAR", "allowed"),
            ("enable", "", [], ["ld_preload"], "LD_PRELOAD", "allowed"),
            ("filter", "", ["FOO"], [], "FOO", "allowed"),
            ("filter", "", ["FOO"], [], "BAR", "refused"),
            ("filter", "", ["FOO"], ["FOO"], "FOO", "allowed"),
            ("filter", "", [], [], "FOO", "refused"),
            ("disable", "", ["FOO"], [], "FOO", "refused"),
            ("", "disable", [], [], "FOO", "refused"),
            ("", "filter", ["FOO"], [], "FOO", "allowed"),
            ("", "filter", ["FOO"], [], "BAR", "refused"),
        ]

        def decide(mode: str, default: str, allow: list[str], deny: list[str], name: str) -> Any:
            env = {"mode": mode, "allow": allow, "deny": deny}
            return policy({"defaultMode": default, "env": env}).check_env(name)

        self.check_table(rows, decide)

    def test_rejection(self) -> None:
        """A refusal carries SECURITY_ENV_REJECTED and the name as a detail."""
        rejection = policy({"env": {"deny": ["LD_PRELOAD"]}}).check_env("LD_PRELOAD")
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_ENV_REJECTED)
        self.assertEqual(rejection.details, {"name": "LD_PRELOAD"})
        self.assertIn("deny list", rejection.explanation)

    def test_original_command_reserved_with_force_command(self) -> None:
        """With ``forceCommand``, the client may not set ``SSH_ORIGINAL_COMMAND`` itself."""
        forced = policy({"forceCommand": "/bin/menu"})
        self.assertIsNotNone(forced.check_env("SSH_ORIGINAL_COMMAND"))
        self.assertIsNone(forced.check_env("FOO"))
        self.assertIsNone(policy({}).check_env("SSH_ORIGINAL_COMMAND"))


class CommandTests(TableTestCase):
    def test_table(self) -> None:
        """filter: the exec payload must equal an ``allow`` entry exactly."""
        rows = [
            # mode, allow, command, verdict
            ("", [], "rm -rf /", "allowed"),
            ("enable", [], "anything", "allowed"),
            ("filter", ["echo hi"], "echo hi", "allowed"),
            ("filter", ["echo hi"], "echo hi ", "refused"),
            ("filter", ["echo hi"], "echo  hi", "refused"),
            ("filter", ["echo hi"], "echo", "refused"),
            ("filter", ["echo hi"], "echo hi; id", "refused"),
            ("filter", ["echo hi"], "ECHO HI", "refused"),
            ("filter", [], "", "refused"),
            ("disable", ["echo hi"], "echo hi", "refused"),
        ]

        def decide(mode: str, allow: list[str], command: str) -> Any:
            p = policy({"command": {"mode": mode, "allow": allow}})
            return p.check_program(ProgramRequest("exec", command))

        self.check_table(rows, decide)

    def test_rejection(self) -> None:
        """A refusal carries SECURITY_EXEC_REJECTED and the command."""
        p = policy({"command": {"mode": "filter", "allow": ["ls"]}})
        rejection = p.check_program(ProgramRequest("exec", "id"))
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_EXEC_REJECTED)
        self.assertEqual(rejection.details, {"command": "id"})

    def test_command_policy_does_not_judge_shells_or_subsystems(self) -> None:
        """``command.mode: disable`` refuses exec only."""
        p = policy({"command": {"mode": "disable"}})
        self.assertIsNone(p.check_program(ProgramRequest("shell")))
        self.assertIsNone(p.check_program(ProgramRequest("subsystem", "sftp")))


class ShellTests(TableTestCase):
    def test_table(self) -> None:
        """Only ``enable`` permits a shell; ``filter`` has no list and acts as ``disable``."""
        rows = [
            ("", "", "allowed"),
            ("enable", "", "allowed"),
            ("filter", "", "refused"),
            ("disable", "", "refused"),
            ("", "filter", "refused"),
            ("enable", "disable", "allowed"),
        ]

        def decide(mode: str, default: str) -> Any:
            p = policy({"defaultMode": default, "shell": {"mode": mode}})
            return p.check_program(ProgramRequest("shell"))

        self.check_table(rows, decide)
        rejection = policy({"shell": {"mode": "disable"}}).check_program(ProgramRequest("shell"))
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_SHELL_REJECTED)


class SubsystemTests(TableTestCase):
    def test_table(self) -> None:
        """enable: all but ``deny``; filter: only ``allow`` (``deny`` ignored); disable: none."""
        rows = [
            # mode, allow, deny, subsystem, verdict
            ("", [], [], "sftp", "allowed"),
            ("enable", [], ["sftp"], "sftp", "refused"),
            ("enable", [], ["sftp"], "other", "allowed"),
            ("enable", ["other"], [], "sftp", "allowed"),
            ("filter", ["sftp"], [], "sftp", "allowed"),
            ("filter", ["sftp"], [], "other", "refused"),
            ("filter", ["sftp"], ["sftp"], "sftp", "allowed"),
            ("disable", ["sftp"], [], "sftp", "refused"),
        ]

        def decide(mode: str, allow: list[str], deny: list[str], name: str) -> Any:
            p = policy({"subsystem": {"mode": mode, "allow": allow, "deny": deny}})
            return p.check_program(ProgramRequest("subsystem", name))

        self.check_table(rows, decide)
        p = policy({"subsystem": {"mode": "disable"}})
        rejection = p.check_program(ProgramRequest("subsystem", "sftp"))
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_SUBSYSTEM_REJECTED)
        self.assertEqual(rejection.details, {"subsystem": "sftp"})


class TTYTests(TableTestCase):
    def test_table(self) -> None:
        """Only ``enable`` permits a terminal; ``filter`` acts as ``disable``."""
        rows = [
            ("", "", "allowed"),
            ("enable", "", "allowed"),
            ("filter", "", "refused"),
            ("disable", "", "refused"),
            ("", "disable", "refused"),
        ]

        def decide(mode: str, default: str) -> Any:
            return policy({"defaultMode": default, "tty": {"mode": mode}}).check_tty()

        self.check_table(rows, decide)
        rejection = policy({"tty": {"mode": "filter"}}).check_tty()
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_TTY_REJECTED)


class SignalTests(TableTestCase):
    def test_table(self) -> None:
        """enable: all but ``deny``; filter: only ``allow``; disable: none; ``SIG`` ignored."""
        rows = [
            # mode, allow, deny, signal, verdict
            ("", [], [], "TERM", "allowed"),
            ("enable", [], ["KILL"], "KILL", "refused"),
            ("enable", [], ["KILL"], "SIGKILL", "refused"),
            ("enable", [], ["SIGKILL"], "KILL", "refused"),
            ("enable", [], ["KILL"], "TERM", "allowed"),
            ("filter", ["USR1"], [], "USR1", "allowed"),
            ("filter", ["SIGUSR1"], [], "USR1", "allowed"),
            ("filter", ["USR1"], [], "TERM", "refused"),
            ("disable", ["TERM"], [], "TERM", "refused"),
        ]

        def decide(mode: str, allow: list[str], deny: list[str], name: str) -> Any:
            p = policy({"signal": {"mode": mode, "allow": allow, "deny": deny}})
            return p.check_signal(name)

        self.check_table(rows, decide)

    def test_signal_mode_not_shell_mode(self) -> None:
        """Signals follow ``signal.mode``, not ``shell.mode`` (ContainerSSH reads the latter)."""
        shell_off = policy({"shell": {"mode": "disable"}})
        self.assertIsNone(shell_off.check_signal("TERM"))
        signals_off = policy({"signal": {"mode": "disable"}})
        rejection = signals_off.check_signal("SIGTERM")
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_SIGNAL_REJECTED)
        self.assertEqual(rejection.details, {"signal": "TERM"})
        self.assertIsNone(signals_off.check_program(ProgramRequest("shell")))


class ForceCommandTests(SynchronousTestCase):
    def test_without_force_command(self) -> None:
        """Without ``forceCommand`` the request runs as asked, with no variable."""
        request = ProgramRequest("exec", "ls")
        self.assertEqual(policy({}).forced_program(request), (request, None))

    def test_each_kind_becomes_an_exec(self) -> None:
        """exec and subsystem pass what was asked as SSH_ORIGINAL_COMMAND; shell passes none."""
        p = policy({"forceCommand": "/bin/menu"})
        forced = ProgramRequest("exec", "/bin/menu")
        self.assertEqual(p.forced_program(ProgramRequest("exec", "ls -l")), (forced, "ls -l"))
        self.assertEqual(p.forced_program(ProgramRequest("subsystem", "sftp")), (forced, "sftp"))
        self.assertEqual(p.forced_program(ProgramRequest("shell")), (forced, None))
        self.assertEqual(p.forced_program(ProgramRequest("exec", "")), (forced, ""))

    def test_policies_judge_the_original_request(self) -> None:
        """The command allow list applies to what the client asked, not to the forced command."""
        p = policy(
            {"forceCommand": "/bin/menu", "command": {"mode": "filter", "allow": ["status"]}}
        )
        self.assertIsNone(p.check_program(ProgramRequest("exec", "status")))
        self.assertIsNotNone(p.check_program(ProgramRequest("exec", "/bin/menu")))


class MaxSessionsTests(SynchronousTestCase):
    def test_limit(self) -> None:
        """With ``maxSessions: 10`` the 11th concurrent session is refused."""
        p = policy({"maxSessions": 10})
        self.assertEqual(p.max_sessions, 10)
        self.assertIsNone(p.check_new_session(9))
        rejection = p.check_new_session(10)
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_MAX_SESSIONS)
        self.assertEqual(rejection.user_message, "Too many sessions.")

    def test_unlimited(self) -> None:
        """``-1`` (and ``0``, which a ContainerSSH file reads as the default) mean no limit."""
        for value in (-1, 0):
            self.assertIsNone(policy({"maxSessions": value}).check_new_session(1000))
