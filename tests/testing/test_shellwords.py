"""Command line splitting for the fake backend's shell."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.testing.shellwords import ShellSyntaxError, expand, parse


def words(line: str, env: dict[str, str] | None = None, status: int = 0) -> list[list[str]]:
    """Each command's argv after expansion."""
    return [
        [field for word in command for field in expand(word, env or {}, status)]
        for _, command in parse(line)
    ]


class ParseTests(SynchronousTestCase):
    """Quoting, expansion and command lists."""

    def test_quotes(self) -> None:
        """Double and single quotes group words; backslash escapes."""
        self.assertEqual(
            words("""echo "Hello world!" 'a  b' c\\ d"""), [["echo", "Hello world!", "a  b", "c d"]]
        )

    def test_variables(self) -> None:
        """``$VAR``, ``${VAR}`` and ``$?``; single quotes keep ``$`` literal."""
        env = {"FOO": "Hello world!", "X": "1"}
        self.assertEqual(
            words("""echo "$FOO" ${X}2 '$FOO' $? $""", env, status=7),
            [["echo", "Hello world!", "12", "$FOO", "7", "$"]],
        )

    def test_unquoted_expansion_splits_and_vanishes(self) -> None:
        """Unquoted values are split on whitespace; empty ones leave no word."""
        self.assertEqual(
            words('echo $A $EMPTY "$EMPTY"', {"A": "x  y", "EMPTY": ""}), [["echo", "x", "y", ""]]
        )

    def test_lists(self) -> None:
        """``;``, ``&&`` and ``||`` separate commands; ``#`` starts a comment."""
        parsed = parse("true && echo a || echo b; exit 3 # bye")
        self.assertEqual([connector for connector, _ in parsed], [";", "&&", "||", ";"])

    def test_errors(self) -> None:
        """Unterminated quotes and unsupported syntax are syntax errors."""
        for line in ['echo "open', "echo 'open", "cat | wc", "echo > file", "&& x", "true &&"]:
            self.assertRaises(ShellSyntaxError, parse, line)
