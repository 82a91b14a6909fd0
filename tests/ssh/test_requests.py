"""Strict decoding of channel request payloads."""

from __future__ import annotations

import struct

from twisted.conch.ssh import common
from twisted.conch.ssh.session import packRequest_pty_req
from twisted.trial.unittest import SynchronousTestCase

from conch_container.interfaces import ExitStatus
from conch_container.ssh.requests import (
    PayloadError,
    encode_modes,
    exit_request,
    parse_env,
    parse_pty_req,
    parse_string,
    parse_window_change,
)


class ParseTests(SynchronousTestCase):
    """The parsers accept what clients send and refuse what is malformed."""

    def test_pty_req(self) -> None:
        """``pty-req`` as Conch's client packs it."""
        modes = encode_modes([(1, 3), (53, 1)])
        data = packRequest_pty_req(b"xterm-256color", (25, 80, 640, 480), modes)
        self.assertEqual(parse_pty_req(data), ("xterm-256color", 80, 25, 640, 480, modes))

    def test_env(self) -> None:
        """``env``: name and value."""
        self.assertEqual(parse_env(common.NS(b"LANG") + common.NS(b"C.UTF-8")), ("LANG", "C.UTF-8"))

    def test_window_change(self) -> None:
        """``window-change``: columns, rows, pixels."""
        self.assertEqual(parse_window_change(struct.pack(">4L", 120, 40, 0, 0)), (120, 40, 0, 0))

    def test_truncated(self) -> None:
        """Truncated payloads are errors, not shorter strings."""
        for parser, data in [
            (parse_string, b"\x00\x00\x00\x05abc"),
            (parse_string, b"\x00\x00"),
            (parse_env, common.NS(b"ONLY_NAME")),
            (parse_window_change, b"\x00" * 12),
            (parse_pty_req, common.NS(b"xterm") + b"\x00" * 16),
        ]:
            self.assertRaises(PayloadError, parser, data)

    def test_not_utf8(self) -> None:
        """Strings that are not UTF-8 are refused."""
        self.assertRaises(PayloadError, parse_string, common.NS(b"\xff\xfe"))


class ExitRequestTests(SynchronousTestCase):
    """The ``exit-status`` and ``exit-signal`` requests."""

    def test_exit_status(self) -> None:
        """An exit code is a uint32."""
        self.assertEqual(exit_request(ExitStatus(code=42)), (b"exit-status", b"\x00\x00\x00\x2a"))

    def test_exit_status_out_of_range(self) -> None:
        """A code a uint32 cannot hold is a backend's bug, refused with a message saying so."""
        self.assertEqual(
            exit_request(ExitStatus(code=2**32 - 1)), (b"exit-status", b"\xff\xff\xff\xff")
        )
        for code in (-1, 2**32):
            error = self.assertRaises(ValueError, exit_request, ExitStatus(code=code))
            self.assertIn(f"exit code {code} is outside the 0 to 4294967295", str(error))

    def test_exit_signal(self) -> None:
        """A signal: name without SIG, core-dumped flag, message, language."""
        name, payload = exit_request(ExitStatus(signal="SIGSEGV", core_dumped=True, message="boom"))
        self.assertEqual(name, b"exit-signal")
        self.assertEqual(
            payload, common.NS(b"SEGV") + b"\x01" + common.NS(b"boom") + common.NS(b"")
        )
