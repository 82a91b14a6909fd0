"""Variables no program can be given, in the security policy, the filter, and behind the SSH server.

The two ways past the ``env`` settings that a name with an ``=`` opened: a
deny list compares whole names, so ``LD_PRELOAD=/lib/x.so:`` is not
``LD_PRELOAD`` to it; and with ``forceCommand``, ``SSH_ORIGINAL_COMMAND=id #``
is not the reserved name, yet the backend would set that very variable.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import ProgramRequest, PtyRequest
from tests.security.test_filter import FilterTestCase
from tests.security.test_policy import policy, verdict
from tests.security.test_ssh import SecuredTestCase
from tests.ssh.harness import env_request, exec_request, pty_request

DENY = {"env": {"mode": "enable", "deny": ["LD_PRELOAD", "PATH"]}}
FORCED = {"forceCommand": 'echo "forced:$SSH_ORIGINAL_COMMAND"'}
SMUGGLED_PRELOAD = "LD_PRELOAD=/lib/x.so:"
SMUGGLED_COMMAND = "SSH_ORIGINAL_COMMAND=id #"


class PolicyTests(SynchronousTestCase):
    def test_unusable_names_refused_in_every_mode(self) -> None:
        """Whatever the mode and lists, a name no program can be given is refused."""
        names = [SMUGGLED_PRELOAD, SMUGGLED_COMMAND, "", "PATH\0", "BAD-NAME", "1X"]
        settings: list[dict[str, Any]] = [
            {},
            DENY,
            {"env": {"mode": "filter", "allow": names}},
            {"defaultMode": "enable"},
        ]
        for security in settings:
            for name in names:
                with self.subTest(security=security, name=name):
                    self.assertEqual(verdict(policy(security).check_env(name, "v")), "refused")

    def test_deny_list_bypass_refused(self) -> None:
        """``LD_PRELOAD=/lib/x.so:`` does not slip past a deny list naming ``LD_PRELOAD``."""
        rejection = policy(DENY).check_env(SMUGGLED_PRELOAD, "")
        assert rejection is not None
        self.assertEqual(rejection.code, messages.SECURITY_ENV_REJECTED)
        self.assertEqual(rejection.details, {"name": "LD_PRELOAD"})
        self.assertIn("its name contains '='", rejection.explanation)

    def test_original_command_bypass_refused(self) -> None:
        """With ``forceCommand``, neither the name nor a name with ``=`` after it may be set."""
        forced = policy(FORCED)
        self.assertEqual(verdict(forced.check_env(SMUGGLED_COMMAND, "")), "refused")
        self.assertEqual(verdict(forced.check_env("SSH_ORIGINAL_COMMAND", "id")), "refused")

    def test_original_command_reserved_even_when_allowed(self) -> None:
        """An allow list naming ``SSH_ORIGINAL_COMMAND`` does not open it under ``forceCommand``."""
        forced = policy({**FORCED, "env": {"mode": "filter", "allow": ["SSH_ORIGINAL_COMMAND"]}})
        rejection = forced.check_env("SSH_ORIGINAL_COMMAND", "id")
        assert rejection is not None
        self.assertIn("reserved for the forced command", rejection.explanation)

    def test_nul_in_value_refused(self) -> None:
        """A value with a NUL is refused even where every name is allowed."""
        self.assertEqual(verdict(policy({}).check_env("FOO", "a\0b")), "refused")
        self.assertEqual(verdict(policy({}).check_env("FOO", "a=b")), "allowed")

    def test_check_variable_ignores_the_lists(self) -> None:
        """``check_variable`` judges only whether a program can be given the variable."""
        disabled = policy({"env": {"mode": "disable"}})
        self.assertIsNone(disabled.check_variable("TERM", "xterm"))
        self.assertEqual(verdict(disabled.check_variable("TERM", "xterm\0")), "refused")
        self.assertEqual(verdict(disabled.check_variable("TERM=x", "xterm")), "refused")


class FilterTests(FilterTestCase):
    def test_smuggled_name_never_reaches_the_backend(self) -> None:
        """The filter refuses ``LD_PRELOAD=/lib/x.so:`` and logs it by name, without a value."""
        session, fake = self.session(DENY)
        with self.assertRaises(RequestRejected):
            session.set_env(SMUGGLED_PRELOAD, "evil-value")
        self.assertFalse(any(name.startswith("LD_PRELOAD") for name in fake.env))
        [event] = self.events_with(messages.SECURITY_ENV_REJECTED)
        self.assertEqual(event["name"], "LD_PRELOAD")
        self.assertNotIn("/lib/x.so", repr(self.events))
        self.assertNotIn("evil-value", repr(self.events))

    def test_terminal_type_with_nul_refused(self) -> None:
        """TERM for an accepted terminal skips the lists, not the variable check."""
        session, fake = self.session({"env": {"mode": "disable"}})
        session.set_pty(PtyRequest("xterm\0", 80, 25))
        self.assertRaises(RequestRejected, session.set_env, "TERM", "xterm\0")
        self.assertNotIn("TERM", fake.env)

    def test_shell_under_force_command_sees_no_smuggled_command(self) -> None:
        """After a refused ``SSH_ORIGINAL_COMMAND=id #``, a shell runs with no such variable."""
        session, fake = self.session(FORCED)
        self.assertRaises(RequestRejected, session.set_env, SMUGGLED_COMMAND, "")
        io = self.run_program(session, ProgramRequest("shell"))
        self.assertEqual(io.stdout_data, b"forced:\n")
        self.assertFalse(any(name.startswith("SSH_ORIGINAL_COMMAND") for name in fake.env))

    def test_original_command_with_nul_is_a_start_failure(self) -> None:
        """An exec command with a NUL cannot become ``SSH_ORIGINAL_COMMAND``: nothing starts."""
        session, fake = self.session(FORCED)
        with self.assertRaises(ContainerSSHError) as caught:
            session.start(ProgramRequest("exec", "ls\0-l"), None)
        self.assertEqual(caught.exception.code, messages.SECURITY_EXEC_FAILED_SETENV)
        self.assertEqual(caught.exception.user_message, "Could not execute program.")
        self.assertIsNone(fake.program)
        self.assertNotIn("SSH_ORIGINAL_COMMAND", fake.env)


class DenyListOverSSHTests(SecuredTestCase):
    """A deny list of ``LD_PRELOAD`` and ``PATH``, behind the whole SSH server."""

    security = DENY

    def test_smuggled_preload_refused_channel_goes_on(self) -> None:
        """``LD_PRELOAD=/lib/x.so:`` gets a failure reply and is logged; the program still runs."""
        channel = self.open()
        refused = self.request(channel, b"env", env_request(SMUGGLED_PRELOAD, ""))
        ran = self.request(channel, b"exec", exec_request('echo "[$LD_PRELOAD]"'))
        self.assertEqual((refused, ran), ("failed", "ok"))
        self.assertEqual((channel.stdout, channel.exit_status), (b"[]\n", 0))
        env = self.harness.backend.sessions[-1].env
        self.assertFalse(any(name.startswith("LD_PRELOAD") for name in env))
        [event] = self.harness.events_with("SECURITY_ENV_REJECTED")
        self.assertEqual(event["name"], "LD_PRELOAD")


class ForceCommandOverSSHTests(SecuredTestCase):
    """``forceCommand`` behind the whole SSH server."""

    security = FORCED

    def test_smuggled_original_command_refused_for_a_shell(self) -> None:
        """``SSH_ORIGINAL_COMMAND=id #`` is refused; the shell's forced command sees none."""
        channel = self.open()
        refused = self.request(channel, b"env", env_request(SMUGGLED_COMMAND, "x"))
        ran = self.request(channel, b"shell")
        self.assertEqual((refused, ran), ("failed", "ok"))
        self.assertEqual((channel.stdout, channel.exit_status), (b"forced:\n", 0))
        self.assertIn("SECURITY_ENV_REJECTED", self.harness.codes())

    def test_exec_sees_the_gateway_original_command(self) -> None:
        """For an exec, the program sees the client's command, never a value the client set."""
        channel = self.open()
        self.request(channel, b"env", env_request("SSH_ORIGINAL_COMMAND", "id"))
        self.request(channel, b"env", env_request(SMUGGLED_COMMAND, "x"))
        self.assertEqual(self.request(channel, b"exec", exec_request("ls")), "ok")
        self.assertEqual(channel.stdout, b"forced:ls\n")
        self.assertEqual(len(self.harness.events_with("SECURITY_ENV_REJECTED")), 2)

    def test_terminal_type_may_be_set_by_the_client(self) -> None:
        """TERM is the client's own terminal type: an ``env`` request may set it too."""
        channel = self.open()
        self.assertEqual(self.request(channel, b"pty-req", pty_request("xterm")), "ok")
        self.assertEqual(self.request(channel, b"env", env_request("TERM", "vt100")), "ok")
