"""Tests for conch_container.backend.program: requests to argv, exec-string splitting."""

from __future__ import annotations

import shlex
import shutil
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from conch_container.backend.program import (
    UnknownSubsystem,
    exec_argv,
    program_argv,
    split_plain_command,
)
from conch_container.interfaces import ProgramRequest

SHELL = ["/bin/bash", "-l"]
SUBSYSTEMS = {"sftp": "/usr/lib/openssh/sftp-server"}

#: Characters that never mean anything to a shell outside quotes.
PLAIN_CHARS = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:,=+@%é"
)
plain_words = st.lists(st.text(PLAIN_CHARS, min_size=1, max_size=12), min_size=1, max_size=6)
#: Any text a word can hold (argv entries cannot contain NUL).
any_words = st.lists(
    st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=12),
    min_size=1,
    max_size=6,
)
#: A small alphabet rich in shell syntax, for strings a shell must interpret.
SHELLISH = st.text(st.sampled_from(list("ab/. \t;&|<>()$`*?[]{}!#~^'\"\\\n=")), max_size=20)


def argv(kind: str, command: str = "") -> list[str]:
    return program_argv(
        ProgramRequest(kind, command),  # type: ignore[arg-type]
        shell_command=SHELL,
        subsystems=SUBSYSTEMS,
    )


class ProgramArgvTests(SynchronousTestCase):
    def test_shell(self) -> None:
        """A shell request runs shellCommand."""
        self.assertEqual(argv("shell"), SHELL)

    def test_subsystem(self) -> None:
        """A subsystem request runs the configured binary alone."""
        self.assertEqual(argv("subsystem", "sftp"), ["/usr/lib/openssh/sftp-server"])

    def test_unknown_subsystem(self) -> None:
        """An unconfigured subsystem raises UnknownSubsystem naming it."""
        error = self.assertRaises(UnknownSubsystem, argv, "subsystem", "nope")
        self.assertEqual(error.name, "nope")

    def test_exec_path(self) -> None:
        """An exec string whose first word is a path runs directly, split into words."""
        self.assertEqual(argv("exec", "/bin/echo 'a b' c"), ["/bin/echo", "a b", "c"])
        self.assertEqual(argv("exec", "./run.sh x"), ["./run.sh", "x"])
        self.assertEqual(argv("exec", "../run.sh"), ["../run.sh"])

    def test_exec_bare_command(self) -> None:
        """A bare command name goes through /bin/sh -c with the original string."""
        self.assertEqual(argv("exec", "echo hi"), ["/bin/sh", "-c", "echo hi"])

    def test_exec_empty(self) -> None:
        """An empty exec string is given to the shell (which does nothing)."""
        self.assertEqual(argv("exec", ""), ["/bin/sh", "-c", ""])

    def test_exec_no_truncation_at_operators(self) -> None:
        """Unquoted operators send the whole string to the shell instead of truncating it."""
        for command in (
            "/bin/echo a; /bin/rm b",
            "/bin/echo a && /bin/rm b",
            "/bin/echo a | /bin/cat",
            "/bin/echo a > /tmp/x",
            "/bin/cat < /etc/passwd",
            "/bin/echo a & /bin/rm b",
            "/bin/echo $HOME",
            "/bin/echo `id`",
            "/bin/ls *.txt",
            "/bin/echo ~",
            "/bin/echo a\n/bin/rm b",
            "/bin/echo a # comment",
            '/bin/echo "$HOME"',
            "/bin/echo (x)",
        ):
            with self.subTest(command=command):
                self.assertEqual(argv("exec", command), ["/bin/sh", "-c", command])

    def test_exec_quoted_operators_are_literal(self) -> None:
        """Quoted or escaped special characters are plain word content."""
        self.assertEqual(
            argv("exec", "/bin/echo 'a; b' \"c | d\" e\\;f"),
            ["/bin/echo", "a; b", "c | d", "e;f"],
        )

    def test_exec_unterminated_quote(self) -> None:
        """A string a shell cannot parse is given to the shell, which reports the error."""
        self.assertEqual(argv("exec", "/bin/echo 'a"), ["/bin/sh", "-c", "/bin/echo 'a"])


class SplitTests(SynchronousTestCase):
    def test_double_quote_escapes(self) -> None:
        """In double quotes a backslash escapes only $ ` \" \\ and newline."""
        self.assertEqual(split_plain_command(r'"a\"b\\c\d\$"'), ['a"b\\c\\d$'])

    def test_adjacent_quotes_join(self) -> None:
        """Quoted and unquoted parts without blanks between them form one word."""
        self.assertEqual(split_plain_command("a'b'\"c\"d"), ["abcd"])

    def test_empty_quotes_are_a_word(self) -> None:
        """'' is an empty word, as in a shell."""
        self.assertEqual(split_plain_command("/bin/x '' \"\""), ["/bin/x", "", ""])

    def test_line_continuation(self) -> None:
        """An unquoted backslash-newline pair disappears."""
        self.assertEqual(split_plain_command("/bin/x a\\\nb"), ["/bin/x", "ab"])

    def test_trailing_backslash(self) -> None:
        """A trailing backslash cannot be parsed."""
        self.assertIsNone(split_plain_command("/bin/x a\\"))

    def test_nul(self) -> None:
        """A NUL byte cannot be an argument."""
        self.assertIsNone(split_plain_command("/bin/x '\0'"))

    @given(plain_words)
    def test_plain_words(self, words: list[str]) -> None:
        """Words of plain characters separated by blanks split back into themselves."""
        self.assertEqual(split_plain_command(" \t ".join(words)), words)

    @given(any_words)
    def test_quoting_round_trip(self, words: list[str]) -> None:
        """Any words quoted with shlex.quote split back into exactly those words."""
        self.assertEqual(split_plain_command(shlex.join(words)), words)

    @given(any_words)
    def test_path_commands_run_directly(self, words: list[str]) -> None:
        """A quoted command whose first word is a path runs as those words."""
        words = ["/bin/prog", *words]
        self.assertEqual(exec_argv(shlex.join(words)), words)

    @given(SHELLISH)
    def test_direct_or_shell(self, command: str) -> None:
        """exec_argv either runs the shell with the original string or splits it."""
        result = exec_argv("/bin/x " + command)
        if result[:2] == ["/bin/sh", "-c"]:
            self.assertEqual(result[2], "/bin/x " + command)
        else:
            self.assertEqual(result, split_plain_command("/bin/x " + command))


class ShellAgreementTests(SynchronousTestCase):
    """Whatever runs without a shell gets exactly the argv a real shell would build."""

    def setUp(self) -> None:
        if shutil.which("sh") is None:
            raise SkipTest("no sh")

    def shell_words(self, command: str) -> list[str]:
        # printf prints each argument followed by NUL; the shell builds the argv.
        out = subprocess.run(
            ["sh", "-c", "printf '%s\\0' " + command],
            capture_output=True,
            check=True,
            timeout=10,
        ).stdout
        return out.decode("utf-8", "surrogateescape").split("\0")[:-1]

    @settings(max_examples=150, deadline=None)
    @given(SHELLISH)
    def test_agrees_with_sh(self, command: str) -> None:
        """A string split without a shell gives the words sh itself would pass."""
        words = split_plain_command(command)
        if words is None or not words:
            return
        self.assertEqual(self.shell_words(command), words)

    @settings(max_examples=100, deadline=None)
    @given(any_words)
    def test_quoted_agrees_with_sh(self, words: list[str]) -> None:
        """Quoted arbitrary words split the same way sh splits them."""
        if not any(words):
            return
        command = shlex.join(words)
        self.assertEqual(self.shell_words(command), split_plain_command(command))
