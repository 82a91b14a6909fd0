"""The audit log end to end: a real gateway, the OpenSSH client, real containers.

Each test logs in with OpenSSH, runs something, and reads the audit log the
gateway wrote with the project's own reader (or ``asciinema``), as an
operator would.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.threads import deferToThread

from conch_container.audit.codec.binaryread import BinaryLogReader
from conch_container.audit.message import AuditMessage, MessageType
from tests.audit.test_asciicast import asciinema_cat
from tests.integration.gateway import GatewayTestCase
from tests.integration.processes import until


class AuditTestCase(GatewayTestCase):
    """A gateway that records every connection in ``audit_format`` to files."""

    audit_format = "binary"
    intercept: dict[str, bool] = {"stdin": True, "stdout": True, "stderr": True}

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        self.audit_dir = self.dir.child("audit")
        self.audit_dir.makedirs()
        data["audit"] = {
            "enable": True,
            "format": self.audit_format,
            "storage": "file",
            "file": {"directory": self.audit_dir.path},
            "intercept": self.intercept,
        }
        return data

    def audit_files(self) -> list[str]:
        return sorted(p.path for p in self.audit_dir.children() if "." not in p.basename())

    def decoded(self, path: str) -> tuple[list[AuditMessage], str | None]:
        with open(path, "rb") as f:
            reader = BinaryLogReader(f)
            messages = list(reader)
            return messages, reader.warning

    async def finished_log(self) -> list[AuditMessage]:
        """The one connection's messages, once its stream ended (the disconnect is written)."""

        def complete() -> bool:
            files = self.audit_files()
            if len(files) != 1:
                return False
            messages, warning = self.decoded(files[0])
            return (
                warning is None and bool(messages) and messages[-1].type == MessageType.DISCONNECT
            )

        await until(complete, 30, "the audit log of the connection is complete")
        [path] = self.audit_files()
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        return self.decoded(path)[0]


def types(messages: list[AuditMessage]) -> list[int]:
    return [m.type for m in messages]


class BinaryFileTests(AuditTestCase):
    async def test_exec_session(self) -> None:
        """A public key login running a command: every step, with its data, in order."""
        out, err, code = await self.ssh("cat; echo out-text; echo err-text >&2; exit 3", "-n")
        self.assertEqual((out, err, code), (b"out-text\n", b"err-text\n", 3))
        messages = await self.finished_log()
        [path] = self.audit_files()
        connection_id = os.path.basename(path)
        self.assertEqual({m.connection_id for m in messages}, {connection_id})
        kinds = types(messages)
        self.assertEqual(kinds[0], MessageType.CONNECT)
        self.assertEqual(messages[0].payload, {"remoteAddr": "127.0.0.1", "country": "XX"})
        expected = [
            MessageType.AUTH_PUBKEY,
            MessageType.AUTH_PUBKEY_SUCCESSFUL,
            MessageType.HANDSHAKE_SUCCESSFUL,
            MessageType.NEW_CHANNEL,
            MessageType.NEW_CHANNEL_SUCCESSFUL,
            MessageType.EXEC,
            MessageType.CLOSE_WRITE,
            MessageType.EXIT,
            MessageType.CLOSE,
            MessageType.DISCONNECT,
        ]
        self.assertEqual([k for k in kinds if k in expected], expected)
        by_type = {m.type: m for m in messages}
        self.assertEqual(by_type[MessageType.HANDSHAKE_SUCCESSFUL].payload, {"username": "alice"})
        exec_message = by_type[MessageType.EXEC]
        self.assertEqual(
            exec_message.payload,
            {"requestId": 0, "program": "cat; echo out-text; echo err-text >&2; exit 3"},
        )
        self.assertIsNotNone(exec_message.channel_id)
        self.assertEqual(by_type[MessageType.EXIT].payload, {"exitStatus": 3})
        output = {
            stream: b"".join(
                m.payload["data"]
                for m in messages
                if m.type == MessageType.IO and m.payload and m.payload["stream"] == stream
            )
            for stream in (1, 2)
        }
        self.assertEqual(output, {1: b"out-text\n", 2: b"err-text\n"})
        stamps = [m.timestamp for m in messages]
        self.assertEqual(stamps, sorted(stamps))
        self.assertGreater(stamps[0], 1_600_000_000 * 10**9)

    async def test_failed_password_then_success(self) -> None:
        """Password logins are recorded without the password unless intercepted."""
        _, _, code = await self.ssh("true", password="wrong", user="alice")
        self.assertNotEqual(code, 0)
        await until(lambda: len(self.audit_files()) == 1, 30, "the first log")
        first = await self.finished_log()
        failed = [m for m in first if m.type == MessageType.AUTH_PASSWORD_FAILED]
        self.assertTrue(failed)
        self.assertEqual(failed[0].payload, {"username": "alice"})
        self.assertIn(MessageType.HANDSHAKE_FAILED, types(first))


class InterceptedPasswordTests(AuditTestCase):
    intercept = {"passwords": True}

    async def test_password_recorded(self) -> None:
        out, _, code = await self.ssh("echo in", password="wonderland")
        self.assertEqual((out, code), (b"in\n", 0))
        messages = await self.finished_log()
        success = [m for m in messages if m.type == MessageType.AUTH_PASSWORD_SUCCESSFUL]
        self.assertEqual(success[0].payload, {"username": "alice", "password": b"wonderland"})
        # Output is not intercepted here.
        self.assertNotIn(MessageType.IO, types(messages))


class AsciicastFileTests(AuditTestCase):
    audit_format = "asciinema"

    async def test_replayed_by_asciinema(self) -> None:
        """``asciinema cat`` prints what the user saw in a terminal session."""
        out, _, code = await self.ssh("echo recorded-$((6*7))", "-tt")
        self.assertEqual(code, 0)
        self.assertIn(b"recorded-42", out)

        def written() -> bool:
            files = self.audit_files()
            return len(files) == 1 and os.path.getsize(files[0]) > 0

        await until(written, 30, "the asciicast file")
        [path] = self.audit_files()
        audit = self.root.getServiceNamed("audit")
        await until(
            lambda: "SSH_DISCONNECTED" in self.logged_codes() and not audit.pending,
            30,
            "the connection's stream is written",
        )
        printed = await deferToThread(asciinema_cat, self, path)
        self.assertIn(b"recorded-42", printed)
