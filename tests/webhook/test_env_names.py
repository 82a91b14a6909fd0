"""An authentication answer's ``environment`` may only hold variables a program can be given."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.metadata import MetadataValue
from conch_container.webhook import protocol


def answer(environment: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A successful answer carrying ``environment`` (names to plain values)."""
    return {
        "success": True,
        "environment": {name: {"value": value} for name, value in environment.items()},
        **extra,
    }


class DecodeEnvironmentTests(SynchronousTestCase):
    def test_portable_names_decoded(self) -> None:
        """Portable names with any value but NUL (``=`` included) are accepted."""
        result = protocol.decode_auth_response(answer({"KRB5CCNAME": "FILE:/tmp/cc=1", "_x": ""}))
        self.assertEqual(
            result.environment,
            {"KRB5CCNAME": MetadataValue("FILE:/tmp/cc=1"), "_x": MetadataValue("")},
        )

    def test_unusable_variable_rejects_the_whole_answer(self) -> None:
        """One variable no program can be given makes the answer malformed, naming the field."""
        cases = [
            ({"LD_PRELOAD=/lib/x.so:": "v"}, "environment.LD_PRELOAD: its name contains '='"),
            ({"OK": "1", "": "v"}, "environment.: its name is empty"),
            ({"BAD-NAME": "v"}, "environment.BAD-NAME: its name is not a portable name"),
            ({"PATH": "/bin\0/tmp"}, "environment.PATH: its value contains a NUL character"),
        ]
        for environment, message in cases:
            with self.subTest(environment=environment):
                with self.assertRaises(protocol.ProtocolError) as caught:
                    protocol.decode_auth_response(answer(environment))
                self.assertTrue(str(caught.exception).startswith(message), caught.exception)

    def test_rejection_names_no_value(self) -> None:
        """The error names the variable up to ``=``: a value smuggled into the name stays out."""
        with self.assertRaises(protocol.ProtocolError) as caught:
            protocol.decode_auth_response(answer({"TOKEN=s3cr3t": "v4lue"}))
        self.assertNotIn("s3cr3t", str(caught.exception))
        self.assertNotIn("v4lue", str(caught.exception))

    def test_rejected_even_when_not_successful(self) -> None:
        """A refusal carrying a bad variable is as malformed as an acceptance carrying one."""
        self.assertRaises(
            protocol.ProtocolError,
            protocol.decode_auth_response,
            answer({"A=B": "v"}, success=False),
        )

    def test_metadata_keys_are_free_form(self) -> None:
        """``metadata`` keys are not variable names: any key is accepted there."""
        result = protocol.decode_auth_response(
            {"success": True, "metadata": {"team.name": {"value": "ops"}, "a=b": {"value": "c"}}}
        )
        self.assertEqual(set(result.metadata), {"team.name", "a=b"})
