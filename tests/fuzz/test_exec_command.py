"""Fuzzing the splitting of ``exec`` commands into words.

``split_plain_command`` never raises: a command is either plain words, split
as a POSIX shell splits them, or ``None`` (it then goes to ``/bin/sh -c``
unchanged). ``exec_argv`` never raises and runs words directly only when the
first one is a path.
"""

from __future__ import annotations

import shlex

from hypothesis import example
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.program import SHELL_ARGV_PREFIX, exec_argv, split_plain_command
from tests.fuzz import fuzz, note

shell_text = st.text(
    st.sampled_from([*" \t\n'\"\\$`;|&<>(){}[]*?!#~^=/.-_", "a", "b", "\x00", "\u00e9"]),
    max_size=30,
)
commands = st.text(max_size=40) | shell_text
words = st.lists(st.text(max_size=10).filter(lambda w: "\x00" not in w), max_size=5)


class SplitTests(SynchronousTestCase):
    @fuzz(commands, expect=("words", "shell"))
    @example("/bin/echo 'a b' \"c\\$d\"")
    @example("\\\n")
    def test_any_command(self, command: str) -> None:
        """Words agree with POSIX word splitting; everything else goes to the shell unchanged."""
        result = split_plain_command(command)
        argv = exec_argv(command)
        if result is None:
            self.assertEqual(argv, [*SHELL_ARGV_PREFIX, command])
            note("shell")
            return
        note("words")
        self.assertNotIn("\x00", command)
        if "\\" not in command and "\n" not in command:
            # Without escapes Python's POSIX mode splits exactly as the shell does.
            self.assertEqual(shlex.split(command), result)
        self.assertEqual(split_plain_command(shlex.join(result)), result)
        if result and result[0].startswith(("/", "./", "../")):
            self.assertEqual(argv, result)
        else:
            self.assertEqual(argv, [*SHELL_ARGV_PREFIX, command])

    @fuzz(words, expect=("round trip",))
    def test_quoted_words(self, given: list[str]) -> None:
        """Words quoted as ``shlex.join`` quotes them split back into the same words."""
        self.assertEqual(split_plain_command(shlex.join(given)), given)
        note("round trip")
