"""The ``asciinema`` format: ContainerSSH's asciicast v2 recording of a connection."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import termios
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container.audit.codec import codec_for
from conch_container.audit.codec.asciicast import (
    AsciicastCodec,
    AsciicastEncoder,
    asciicast_from_messages,
)
from conch_container.audit.codec.binaryread import BinaryLogReader
from conch_container.audit.message import STDERR, STDIN, STDOUT, AuditMessage, MessageType
from conch_container.interfaces import IAuditCodec, IAuditEncoder

from .test_binary import encode

START = 1_700_000_000_250_000_000
CID = "0123456789abcdef0123456789abcdef"
T = MessageType


def msg(
    type: int, payload: dict[str, Any] | None = None, channel: int | None = 0, at: float = 0.0
) -> AuditMessage:
    """A message ``at`` seconds after the connection started."""
    return AuditMessage(CID, START + int(at * 1e9), type, payload, channel)


def io_msg(data: bytes, stream: int = STDOUT, channel: int = 0, at: float = 1.0) -> AuditMessage:
    return msg(T.IO, {"stream": stream, "data": data}, channel, at)


def lines(messages: list[AuditMessage], *, finish: bool = True) -> list[Any]:
    """Every line written for ``messages``, parsed."""
    encoder = AsciicastEncoder(START)
    data = b"".join(encoder.encode(m) for m in messages)
    data += encoder.flush()
    if finish:
        data += encoder.finish()
    return [json.loads(line) for line in data.decode().splitlines()]


SESSION = [
    msg(T.CONNECT, {"remoteAddr": "127.0.0.1", "country": "XX"}, None),
    msg(T.NEW_CHANNEL_SUCCESSFUL, {"channelType": "session"}),
    msg(T.SETENV, {"requestId": 0, "name": "LANG", "value": "C.UTF-8"}),
    msg(
        T.PTY,
        {
            "requestId": 1,
            "term": "xterm",
            "columns": 132,
            "rows": 43,
            "width": 0,
            "height": 0,
            "modelist": b"",
        },
    ),
    msg(T.SETENV, {"requestId": 2, "name": "A", "value": "1"}),
    msg(T.SHELL, {"requestId": 3}, at=0.5),
    io_msg(b"$ ", at=0.75),
    io_msg(b"ls\r", STDIN, at=1.0),
    io_msg("h\u00e9llo\r\n".encode(), at=1.5),
    io_msg(b"oops\r\n", STDERR, at=2.0),
    msg(T.EXIT, {"exitStatus": 0}, at=3.0),
    msg(T.DISCONNECT, None, None, at=3.0),
]


class HeaderTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        """The codec is ``asciinema``; it and its encoders provide the audit interfaces."""
        codec = codec_for("asciinema")
        self.assertIsInstance(codec, AsciicastCodec)
        self.assertTrue(verifyObject(IAuditCodec, codec))
        self.assertTrue(verifyObject(IAuditEncoder, codec.encoder(CID, START)))

    def test_pty_and_env(self) -> None:
        """pty sets TERM and the size, setenv adds variables; written at the shell request."""
        encoder = AsciicastEncoder(START)
        for message in SESSION[:5]:
            self.assertEqual(encoder.encode(message), b"")
        self.assertEqual(
            encoder.encode(SESSION[5]),
            b'{"version":2,"width":132,"height":43,"timestamp":1700000000,"command":"/bin/sh",'
            b'"title":"","env":{"A":"1","LANG":"C.UTF-8","TERM":"xterm"}}\n',
        )

    def test_defaults_at_first_output(self) -> None:
        """Without pty or request, the first I/O writes an 80x25 header for /bin/sh."""
        (header, frame) = lines([io_msg(b"x")])
        self.assertEqual(
            header,
            {
                "version": 2,
                "width": 80,
                "height": 25,
                "timestamp": 1700000000,
                "command": "/bin/sh",
                "title": "",
                "env": {},
            },
        )
        self.assertEqual(frame, [1.0, "o", "x"])

    def test_exec(self) -> None:
        """An exec request names its program as the command."""
        (header,) = lines([msg(T.EXEC, {"requestId": 0, "program": "uname -a"})])
        self.assertEqual(header["command"], "uname -a")

    def test_subsystem(self) -> None:
        """A subsystem request starts the recording as a shell does."""
        (header,) = lines([msg(T.SUBSYSTEM, {"requestId": 0, "subsystem": "sftp"})])
        self.assertEqual(header["command"], "/bin/sh")

    def test_once(self) -> None:
        """One header; what comes after it (a second shell, setenv, pty) changes nothing."""
        result = lines(
            [
                msg(T.EXEC, {"requestId": 0, "program": "a"}),
                msg(T.SETENV, {"requestId": 1, "name": "X", "value": "y"}),
                msg(T.PTY, {"requestId": 2, "term": "t", "columns": 1, "rows": 1}),
                msg(T.SHELL, {"requestId": 3}),
            ]
        )
        self.assertEqual(len(result), 1)
        self.assertEqual((result[0]["env"], result[0]["width"]), ({}, 80))

    def test_finish_without_program(self) -> None:
        """A connection that ran nothing still gets a header (with no command) at finish."""
        self.assertEqual(lines([msg(T.CONNECT, {"remoteAddr": "::1"}, None)])[0]["command"], "")
        self.assertEqual(lines([]), [lines([])[0]])

    def test_connect_sets_start(self) -> None:
        """The connect message's time is the header timestamp and frame times' origin."""
        encoder = AsciicastEncoder(0)
        encoder.encode(msg(T.CONNECT, {}, None))
        header, frame = (json.loads(x) for x in encoder.encode(io_msg(b"x", at=2.5)).splitlines())
        self.assertEqual((header["timestamp"], frame[0]), (1700000000, 2.5))


class FrameTests(SynchronousTestCase):
    def test_session(self) -> None:
        """stdout and stderr become output frames, stdin never; times from the connection."""
        self.assertEqual(
            lines(SESSION)[1:],
            [[0.75, "o", "$ "], [1.5, "o", "h\u00e9llo\r\n"], [2.0, "o", "oops\r\n"]],
        )

    def test_channels_interleaved(self) -> None:
        """Every channel's output goes into the one recording, in order."""
        result = lines([io_msg(b"a", channel=0), io_msg(b"b", channel=5), io_msg(b"c")])
        self.assertEqual([frame[2] for frame in result[1:]], ["a", "b", "c"])

    def test_split_character(self) -> None:
        """A UTF-8 character split between two chunks is written whole, in the second."""
        euro = "\u20ac".encode()
        result = lines([io_msg(b"price: " + euro[:2], at=1), io_msg(euro[2:] + b"!", at=2)])
        self.assertEqual(result[1:], [[1.0, "o", "price: "], [2.0, "o", "\u20ac!"]])

    def test_split_per_stream(self) -> None:
        """Each channel and stream keeps its own incomplete character."""
        e = "\u00e9".encode()
        result = lines(
            [
                io_msg(e[:1], STDOUT, 0),
                io_msg(e[:1], STDERR, 0),
                io_msg(b"x", STDOUT, 1),
                io_msg(e[1:], STDERR, 0),
                io_msg(e[1:], STDOUT, 0),
            ]
        )
        self.assertEqual([frame[2] for frame in result[1:]], ["x", "\u00e9", "\u00e9"])

    def test_invalid_utf8(self) -> None:
        """Bytes that are not UTF-8 become U+FFFD, and the text around them is kept."""
        result = lines([io_msg(b"a\xffb\xc3(")])
        self.assertEqual(result[1][2], "a\ufffdb\ufffd(")

    def test_incomplete_at_finish(self) -> None:
        """A character still incomplete at the end is written as U+FFFD."""
        result = lines([io_msg(b"ok\xe2\x82", at=4)])
        self.assertEqual(result[1:], [[4.0, "o", "ok"], [4.0, "o", "\ufffd"]])

    def test_flush_is_empty(self) -> None:
        """Lines are whole when encode returns them: flush has nothing to add."""
        encoder = AsciicastEncoder(START)
        encoder.encode(io_msg(b"x"))
        self.assertEqual(encoder.flush(), b"")


class ConverterTests(SynchronousTestCase):
    def test_from_binary_log(self) -> None:
        """A binary log converts to the recording the asciinema format writes live."""
        messages = list(BinaryLogReader(io.BytesIO(encode(SESSION))))
        converted = b"".join(asciicast_from_messages(messages))
        self.assertEqual(
            [json.loads(line) for line in converted.decode().splitlines()], lines(SESSION)
        )

    def test_empty(self) -> None:
        """No messages: a header alone."""
        (line,) = b"".join(asciicast_from_messages([])).splitlines()
        self.assertEqual(json.loads(line)["version"], 2)


def asciinema_cat(test: SynchronousTestCase, path: str) -> bytes:
    """What ``asciinema cat`` prints for ``path`` (it needs a terminal: it gets a pty)."""
    if shutil.which("asciinema") is None:
        raise test.skipTest("asciinema is not installed (Debian package asciinema)")
    controller, terminal = os.openpty()
    try:
        done = subprocess.run(
            ["asciinema", "cat", path],
            stdin=terminal,
            capture_output=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "ASCIINEMA_CONFIG_HOME": test.mktemp()},
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    test.assertEqual((done.returncode, done.stderr), (0, b""))
    return done.stdout


class AsciinemaTests(SynchronousTestCase):
    def test_asciinema_cat(self) -> None:
        """The real ``asciinema cat`` prints the session's output back, stdin left out."""
        path = self.mktemp()
        encoder = codec_for("asciinema").encoder(CID, START)
        split = [io_msg("gr\u00fc".encode()[:3]), io_msg("\u00fc".encode()[1:] + b"n\n")]
        with open(path, "wb") as f:
            for message in [*SESSION[:-1], *split, SESSION[-1]]:
                f.write(encoder.encode(message))
            f.write(encoder.finish())
        self.assertEqual(asciinema_cat(self, path), "$ h\u00e9llo\r\noops\r\ngr\u00fcn\n".encode())
