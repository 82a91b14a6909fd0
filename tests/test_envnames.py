"""Tests for conch_container.envnames: which variables a program can be given."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.envnames import (
    LOGGED_NAME_LIMIT,
    InvalidVariable,
    check_variables,
    env_rejection,
    loggable_name,
    name_problem,
    value_problem,
    variable_problem,
)

#: Names a program can be given.
PORTABLE = ["A", "_", "foo", "LD_PRELOAD", "SSH_ORIGINAL_COMMAND", "_X9", "a1_B2"]

#: Names it cannot, and the reason each is refused.
NOT_PORTABLE = [
    ("", "its name is empty"),
    ("LD_PRELOAD=/lib/x.so:", "its name contains '='"),
    ("=", "its name contains '='"),
    ("SSH_ORIGINAL_COMMAND=id #", "its name contains '='"),
    ("PATH\0", "its name contains a NUL character"),
    ("1X", "its name is not a portable name"),
    ("BAD-NAME", "its name is not a portable name"),
    ("BAD.NAME", "its name is not a portable name"),
    ("BAD NAME", "its name is not a portable name"),
    ("PATH\n", "its name is not a portable name"),
    ("ÄRGER", "its name is not a portable name"),
    ("X\u0660", "its name is not a portable name"),
]


class NameTests(SynchronousTestCase):
    def test_portable_names_pass(self) -> None:
        """Letters, digits and underscores, not starting with a digit, are names."""
        for name in PORTABLE:
            self.assertIsNone(name_problem(name), name)

    def test_other_names_refused(self) -> None:
        """Empty names, ``=``, NUL, and anything outside the portable set are refused."""
        for name, why in NOT_PORTABLE:
            problem = name_problem(name)
            self.assertIsNotNone(problem, repr(name))
            assert problem is not None
            self.assertTrue(problem.startswith(why), (name, problem))


class ValueTests(SynchronousTestCase):
    def test_any_value_but_nul(self) -> None:
        """A value may hold anything, ``=`` and newlines included, except NUL."""
        for value in ["", "a=b", "line\nline", "/lib/x.so:", "ünïcode"]:
            self.assertIsNone(value_problem(value), repr(value))
        self.assertEqual(value_problem("a\0b"), "its value contains a NUL character")

    def test_variable_names_first(self) -> None:
        """A variable is judged by its name, then by its value."""
        self.assertIsNone(variable_problem("FOO", "bar"))
        self.assertEqual(variable_problem("A=B", "\0"), "its name contains '='")
        self.assertEqual(variable_problem("A", "\0"), "its value contains a NUL character")

    def test_check_variables(self) -> None:
        """``check_variables`` raises a ``ValueError`` naming the first refused variable."""
        check_variables([("FOO", "bar"), ("_", "")])
        with self.assertRaises(InvalidVariable) as caught:
            check_variables([("FOO", "bar"), ("LD_PRELOAD=/lib/x.so:", "v"), ("1", "")])
        self.assertIsInstance(caught.exception, ValueError)
        self.assertEqual(caught.exception.name, "LD_PRELOAD")
        self.assertEqual(caught.exception.why, "its name contains '='")
        self.assertNotIn("/lib/x.so", str(caught.exception))


class LoggingTests(SynchronousTestCase):
    def test_loggable_name_stops_before_the_value(self) -> None:
        """What follows ``=`` (a value in disguise) or NUL is never logged."""
        self.assertEqual(loggable_name("TOKEN=s3cr3t"), "TOKEN")
        self.assertEqual(loggable_name("PATH\0s3cr3t"), "PATH")
        self.assertEqual(loggable_name("BAD-NAME"), "BAD-NAME")

    def test_loggable_name_is_short(self) -> None:
        """A name as long as a packet is shortened for the log."""
        logged = loggable_name("A" * 30000)
        self.assertEqual(logged, "A" * LOGGED_NAME_LIMIT + "...")

    def test_env_rejection(self) -> None:
        """The refusal carries the env code, the reason, and the loggable name only."""
        rejection = env_rejection("TOKEN=s3cr3t", "its name contains '='")
        self.assertEqual(rejection.code, messages.SECURITY_ENV_REJECTED)
        self.assertEqual(rejection.user_message, "Environment variable setting rejected.")
        self.assertEqual(
            rejection.explanation,
            "Setting an environment variable is rejected because its name contains '='.",
        )
        self.assertEqual(rejection.details, {"name": "TOKEN"})
        self.assertNotIn("s3cr3t", repr(rejection) + repr(rejection.details))
