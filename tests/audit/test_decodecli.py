"""``conch-container audit decode`` and ``audit asciicast``: files, directories, stdin, garbage."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli
from conch_container.audit.message import AuditMessage, MessageType

from .test_asciicast import SESSION
from .test_binary import encode
from .test_binaryread import FIXTURES, fixture

FIXTURE = os.path.join(FIXTURES, "auditlog-v1-0.4.0.bin")
#: The source tree these tests belong to, for the commands run as processes.
CHECKOUT = str(Path(__file__).resolve().parents[2])
NOT_A_LOG = "not an audit log (it does not start with ContainerSSH-Auditlog)"


def message(n: int, text: str = "x") -> AuditMessage:
    return AuditMessage("c", n, MessageType.EXEC, {"requestId": n, "program": text}, 0)


class CommandTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)

    def run_cli(self, *argv: str, stdin: bytes | None = None) -> int:
        if stdin is not None:
            self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        return cli.main(list(argv))

    def output(self) -> bytes:
        self.stdout.flush()
        buffer = self.stdout.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output().decode().splitlines()]

    def errors(self) -> list[str]:
        return self.stderr.getvalue().splitlines()

    def write(self, data: bytes, name: str | None = None, directory: str | None = None) -> str:
        if directory is not None:
            path = os.path.join(directory, name or "f")
        else:
            path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        return path


class DecodeTests(CommandTestCase):
    def test_containerssh_log(self) -> None:
        """ContainerSSH's log: one line per message, as its decoder prints; a warning, exit 0."""
        self.assertEqual(self.run_cli("audit", "decode", FIXTURE), 0)
        lines = self.output().decode().splitlines()
        self.assertEqual(len(lines), 11)
        self.assertEqual(
            lines[1],
            '{"connectionId":"b55b141aab3741d7b7858db45aa129e8","timestamp":1625081015850043300,'
            '"type":100,"typeId":"auth_password","typeName":"Password authentication",'
            '"payload":{"username":"foo","password":"YmFy"},"channelId":null}',
        )
        self.assertEqual(
            [line["typeId"] for line in self.json_lines()][-3:], ["exit", "close", "disconnect"]
        )
        self.assertEqual(
            self.errors(),
            [
                f"{FIXTURE}: warning: the stream ended without its end marker, "
                "after 11 whole messages"
            ],
        )

    def test_complete_log(self) -> None:
        """A log with its end marker: the lines, nothing on stderr."""
        path = self.write(encode([message(1), message(2)]))
        self.assertEqual(self.run_cli("audit", "decode", path), 0)
        self.assertEqual([line["timestamp"] for line in self.json_lines()], [1, 2])
        self.assertEqual(self.errors(), [])

    def test_go_escaping(self) -> None:
        """Text is escaped as Go's encoding/json escapes it, non-ASCII left as UTF-8."""
        path = self.write(encode([message(1, "a<b>&c\u2028\u00e9")]))
        self.run_cli("audit", "decode", path)
        self.assertIn('"program":"a\\u003cb\\u003e\\u0026c\\u2028\u00e9"'.encode(), self.output())

    def test_directory(self) -> None:
        """A directory: its files without '.' in the name, sorted; empty files skipped."""
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "sub"))
        self.write(encode([message(2)]), "b", directory)
        self.write(encode([message(1)]), "a", directory)
        self.write(b'{"startTime": 1}', "a.metadata.json", directory)
        self.write(b"", "empty", directory)
        self.assertEqual(self.run_cli("audit", "decode", directory), 0)
        self.assertEqual([line["timestamp"] for line in self.json_lines()], [1, 2])

    def test_stdin(self) -> None:
        """No path, or -, reads standard input."""
        data = encode([message(1)])
        self.assertEqual(self.run_cli("audit", "decode", stdin=data), 0)
        self.assertEqual(self.run_cli("audit", "decode", "-", stdin=data), 0)
        self.assertEqual(len(self.json_lines()), 2)

    def test_truncated(self) -> None:
        """A log cut inside a message: the whole messages, a warning naming it, exit 0."""
        first = encode([message(1)], finish=False)
        data = encode([message(1), message(2, os.urandom(400).hex())], finish=False)
        path = self.write(data[: (len(first) + len(data)) // 2])
        self.assertEqual(self.run_cli("audit", "decode", path), 0)
        self.assertEqual(len(self.json_lines()), 1)
        self.assertEqual(
            self.errors(),
            [f"{path}: warning: the stream ended early, inside message 2; 1 whole message read"],
        )

    def test_garbage_then_good(self) -> None:
        """A file that is no log: an error line naming it, the others still read, exit 1."""
        bad = self.write(b"\x00\x01 certainly not an audit log " * 3)
        good = self.write(encode([message(1)]))
        self.assertEqual(self.run_cli("audit", "decode", bad, "/nonexistent/log", good), 1)
        self.assertEqual(len(self.json_lines()), 1)
        self.assertEqual(
            self.errors(), [f"{bad}: {NOT_A_LOG}", "/nonexistent/log: No such file or directory"]
        )

    def test_garbage_stdin(self) -> None:
        """Garbage on standard input is named as such."""
        self.assertEqual(self.run_cli("audit", "decode", stdin=b"hello"), 1)
        self.assertEqual(self.errors(), [f"standard input: {NOT_A_LOG}"])

    def test_damaged(self) -> None:
        """Damaged data after good messages: those messages, an error line, exit 1."""
        path = self.write(encode([message(1)], finish=False) + b"\xff" * 64)
        self.assertEqual(self.run_cli("audit", "decode", path), 1)
        self.assertEqual(len(self.json_lines()), 1)
        (error,) = self.errors()
        self.assertTrue(error.startswith(f"{path}: error: the stream is damaged after 1 whole"))

    def test_unknown_version(self) -> None:
        """An unknown version is an error naming the file and the version."""
        path = self.write(fixture("auditlog-v1-0.4.0.bin")[:32] + b"\x09" + b"\0" * 7)
        self.assertEqual(self.run_cli("audit", "decode", path), 1)
        self.assertEqual(
            self.errors(),
            [f"{path}: audit log format version 9 is not supported (only 1 and 2 are)"],
        )


class AsciicastCommandTests(CommandTestCase):
    def test_to_stdout(self) -> None:
        """A binary log becomes an asciicast on standard output."""
        path = self.write(encode(SESSION))
        self.assertEqual(self.run_cli("audit", "asciicast", path), 0)
        lines = self.json_lines()
        self.assertEqual(lines[0]["env"]["TERM"], "xterm")
        self.assertEqual([line[2] for line in lines[1:]], ["$ ", "h\u00e9llo\r\n", "oops\r\n"])

    def test_to_file(self) -> None:
        """-o writes the asciicast to a file; a truncated log converts with a warning."""
        path = self.write(encode(SESSION, finish=False)[:-30])
        out = self.mktemp()
        self.assertEqual(self.run_cli("audit", "asciicast", path, "-o", out), 0)
        with open(out, "rb") as f:
            self.assertEqual(json.loads(f.readline())["version"], 2)
        self.assertEqual(self.output(), b"")
        self.assertIn(f"{path}: warning: the stream ended", self.stderr.getvalue())

    def test_garbage(self) -> None:
        """A file that is no log: an error line, exit 1, no output file created."""
        path = self.write(b"#!/bin/sh\necho this is a script, not a log\n")
        out = self.mktemp()
        self.assertEqual(self.run_cli("audit", "asciicast", path, "-o", out), 1)
        self.assertEqual(self.errors(), [f"{path}: {NOT_A_LOG}"])
        self.assertFalse(os.path.exists(out))

    def test_unwritable_output(self) -> None:
        """An output that cannot be created is an error line naming it."""
        path = self.write(encode(SESSION))
        out = os.path.join(self.mktemp(), "missing", "x.cast")
        self.assertEqual(self.run_cli("audit", "asciicast", path, "-o", out), 1)
        self.assertEqual(self.errors(), [f"{out}: No such file or directory"])


class ProcessTests(SynchronousTestCase):
    """The command as operators run it: never a traceback."""

    def run_process(self, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "conch_container.cli", *argv],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": CHECKOUT},
        )

    def test_bad_input(self) -> None:
        """Garbage, a cut header, a cut body: one line on stderr each, no traceback."""
        cases = [
            (b"garbage", 1, f"standard input: {NOT_A_LOG}"),
            (
                b"ContainerSSH",
                0,
                "standard input: warning: the stream ended early, inside the file",
            ),
            (fixture("auditlog-v1-0.4.0.bin")[:90], 0, "standard input: warning: the stream ended"),
            (b"ContainerSSH-Auditlog".ljust(32, b"\0") + b"\1" * 9, 1, "standard input: audit log"),
        ]
        for data, status, error in cases:
            for argv in (["decode"], ["asciicast", "-"]):
                done = self.run_process("audit", *argv, stdin=data)
                self.assertEqual(done.returncode, status, (argv, data, done.stderr))
                self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
                self.assertTrue(done.stderr.decode().startswith(error), done.stderr)

    def test_closed_pipe(self) -> None:
        """A reader that stops early (| head) ends the command quietly."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(encode([message(n, "z" * 200) for n in range(5000)]))
        process = subprocess.Popen(
            [sys.executable, "-m", "conch_container.cli", "audit", "decode", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": CHECKOUT},
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
        self.assertEqual(process.wait(timeout=120), 0)
        self.assertEqual(stderr, b"")
