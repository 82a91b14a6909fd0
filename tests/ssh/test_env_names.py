"""``env`` requests whose variable no program can be given, against the whole SSH server in memory.

No security filter here: the SSH layer refuses such a variable by itself,
whatever backend is behind it.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.ssh import common
from twisted.trial.unittest import SynchronousTestCase

from conch_container.ssh.requests import PayloadError, VariableRefused, parse_env, parse_pty_req
from tests.ssh.harness import (
    ClientChannel,
    Harness,
    env_request,
    exec_request,
    pty_request,
    request_result,
)

REFUSED_NAME = "Setting an environment variable is rejected because its name contains '='."


class ParseEnvTests(SynchronousTestCase):
    def test_portable_name_accepted(self) -> None:
        """A portable name with any value (``=`` included) is decoded as it came."""
        data = common.NS(b"LD_LIBRARY_PATH") + common.NS(b"/opt/lib=x")
        self.assertEqual(parse_env(data), ("LD_LIBRARY_PATH", "/opt/lib=x"))

    def test_unusable_variables_refused(self) -> None:
        """Names with ``=``, NUL or other characters, empty names and NUL values are refused."""
        for name, value in [
            (b"LD_PRELOAD=/lib/x.so:", b""),
            (b"SSH_ORIGINAL_COMMAND=id #", b"x"),
            (b"", b"x"),
            (b"PATH\x00", b"/tmp"),
            (b"BAD-NAME", b"x"),
            (b"1X", b"x"),
            (b"FOO", b"a\x00b"),
        ]:
            with self.assertRaises(VariableRefused, msg=repr(name)) as caught:
                parse_env(common.NS(name) + common.NS(value))
            self.assertEqual(caught.exception.rejection.code.code, "SECURITY_ENV_REJECTED")

    def test_terminal_type_with_nul_refused(self) -> None:
        """The terminal type becomes TERM, so a NUL in it makes the pty-req undecodable."""
        data = common.NS(b"xterm\x00") + b"\x00" * 16 + common.NS(b"")
        self.assertRaises(PayloadError, parse_pty_req, data)


class EnvRequestTests(SynchronousTestCase):
    """What the client sees and what the program gets."""

    def setUp(self) -> None:
        self.harness = Harness()
        self.client = self.harness.login()

    def request(self, channel: ClientChannel, name: bytes, data: bytes = b"") -> str:
        d = channel.request(name, data)
        self.harness.flush()
        return request_result(d)

    def backend_env(self) -> Any:
        return self.harness.backend.sessions[-1].env

    def test_name_with_equals_refused_channel_stays_open(self) -> None:
        """``LD_PRELOAD=/lib/x.so:`` gets a failure reply; the channel goes on to run a program."""
        channel = self.harness.open_session(self.client)
        refused = self.request(channel, b"env", env_request("LD_PRELOAD=/lib/x.so:", "v"))
        accepted = self.request(channel, b"env", env_request("OK", "1"))
        ran = self.request(channel, b"exec", exec_request('echo "$OK"'))
        self.assertEqual((refused, accepted, ran), ("failed", "ok", "ok"))
        self.assertEqual((channel.stdout, channel.exit_status), (b"1\n", 0))
        self.assertFalse(any(name.startswith("LD_PRELOAD") for name in self.backend_env()))

    def test_refusal_logged_under_the_env_code_without_the_value(self) -> None:
        """The refusal is logged as ``SECURITY_ENV_REJECTED`` with the name up to ``=`` only."""
        channel = self.harness.open_session(self.client)
        self.request(channel, b"env", env_request("TOKEN=s3cr3t", "v4lue"))
        [event] = self.harness.events_with("SECURITY_ENV_REJECTED")
        self.assertEqual(event["name"], "TOKEN")
        self.assertEqual(event["reason"], REFUSED_NAME)
        self.assertIn(event["channelId"], self.client.server.service.channels)
        [failed] = self.harness.events_with("SSH_CHANNEL_REQUEST_FAILED")
        self.assertEqual((failed["requestType"], failed["reason"]), ("env", REFUSED_NAME))
        logged = repr(self.harness.events)
        self.assertNotIn("s3cr3t", logged)
        self.assertNotIn("v4lue", logged)
        codes = self.harness.codes()
        self.assertNotIn("UNKNOWN_ERROR", codes)
        self.assertNotIn("SSH_DECODE_FAILED", codes)

    def test_nul_in_value_refused(self) -> None:
        """A value with a NUL cannot be stored in an environment: refused, nothing set."""
        channel = self.harness.open_session(self.client)
        self.assertEqual(self.request(channel, b"env", env_request("FOO", "a\0b")), "failed")
        self.assertEqual(self.request(channel, b"exec", exec_request("true")), "ok")
        self.assertNotIn("FOO", self.backend_env())
        [event] = self.harness.events_with("SECURITY_ENV_REJECTED")
        self.assertEqual(event["name"], "FOO")

    def test_nul_in_terminal_type_refused(self) -> None:
        """A pty-req whose terminal type holds a NUL fails; the program runs without a terminal."""
        channel = self.harness.open_session(self.client)
        self.assertEqual(self.request(channel, b"pty-req", pty_request("xterm\0")), "failed")
        self.assertEqual(self.request(channel, b"exec", exec_request("true")), "ok")
        self.assertIsNone(self.harness.backend.sessions[-1].pty)
        self.assertIn("SSH_DECODE_FAILED", self.harness.codes())
