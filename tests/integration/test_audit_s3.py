"""The audit log uploaded to S3, end to end: a real gateway, OpenSSH, moto in server mode.

A session's log arrives in the bucket under the connection id once the
connection closes, decodes to what the user saw, and carries ContainerSSH's
object metadata. A gateway killed with SIGKILL mid-session leaves its log in
the spool; the next start uploads it (see :mod:`tests.integration.test_audit_crash`).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread

from conch_container.audit.codec.binaryread import BinaryLogReader
from conch_container.audit.message import AuditMessage, MessageType
from tests.audit.s3_support import client, new_bucket, s3_endpoint
from tests.integration.gateway import SSH, GatewayTestCase, reactor
from tests.integration.processes import Output, clean_env, until


def object_messages(s3: Any, bucket: str, key: str) -> list[AuditMessage]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    reader = BinaryLogReader(io.BytesIO(body))
    messages = list(reader)
    assert reader.warning is None, reader.warning
    return messages


class S3AuditTests(GatewayTestCase):
    def setUp(self) -> Any:
        self.endpoint = s3_endpoint()
        self.s3 = client(self.endpoint)
        self.bucket = new_bucket(self.s3)
        return super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        self.spool = self.dir.child("spool")
        self.spool.makedirs()
        data["audit"] = {
            "enable": True,
            "format": "binary",
            "storage": "s3",
            "intercept": {"stdout": True},
            "s3": {
                "local": self.spool.path,
                "endpoint": self.endpoint,
                "region": "us-east-1",
                "bucket": self.bucket,
                "accessKey": "test-key",
                "secretKey": "test-secret",
                "pathStyleAccess": True,
                "metadata": {"username": True, "ip": True},
            },
        }
        return data

    def keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listing.get("Contents", [])]

    async def test_session_uploaded(self) -> None:
        """The log is in the bucket after the disconnect, with metadata; the spool is empty."""
        out, _, code = await self.ssh("echo uploaded-text")
        self.assertEqual((out, code), (b"uploaded-text\n", 0))

        async def with_exec() -> bool:
            for key in await deferToThread(self.keys):
                messages = await deferToThread(object_messages, self.s3, self.bucket, key)
                if any(m.type == MessageType.EXEC for m in messages):
                    self.found = (key, messages)
                    return True
            return False

        await until(lambda: ensureDeferred(with_exec()), 60, "the session's log in the bucket")
        key, messages = self.found
        self.assertEqual(messages[-1].type, MessageType.DISCONNECT)
        output = b"".join(
            m.payload["data"] for m in messages if m.type == MessageType.IO and m.payload
        )
        self.assertEqual(output, b"uploaded-text\n")
        head = await deferToThread(self.s3.head_object, Bucket=self.bucket, Key=key)
        self.assertEqual(
            {k: head["Metadata"].get(k) for k in ("username", "ip", "authenticated", "country")},
            {"username": "alice", "ip": "127.0.0.1", "authenticated": "true", "country": "XX"},
        )
        await until(
            lambda: not any(key in p.basename() for p in self.spool.children()),
            30,
            "the uploaded log removed from the spool",
        )

    async def test_large_session_uploaded_while_open(self) -> None:
        """30 MB of output: parts are in S3 while the session runs; the object is complete after.

        The output is random (incompressible), so the log is over 30 MB and
        its first parts go up while the program still sleeps; what the object
        decodes to is exactly what the client received.
        """
        size = 30 * 1024 * 1024
        client = Output()
        assert SSH is not None
        reactor.spawnProcess(
            client,
            SSH,
            [SSH, *self.ssh_args(), f"head -c {size} /dev/urandom; sleep 15"],
            env=clean_env(),
        )

        def parts_uploaded() -> int:
            uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
            return sum(
                len(
                    self.s3.list_parts(
                        Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]
                    ).get("Parts", [])
                )
                for u in uploads
            )

        await until(lambda: len(client.output) >= size, 60, "the output received")
        await until(lambda: deferToThread(parts_uploaded), 60, "parts uploaded while open")
        self.assertFalse(client.ended.called, "the session is still open")
        await client.ended
        received = hashlib.sha256(client.output[:size]).hexdigest()

        async def complete() -> bool:
            for key in await deferToThread(self.keys):
                messages = await deferToThread(object_messages, self.s3, self.bucket, key)
                data = b"".join(
                    m.payload["data"] for m in messages if m.type == MessageType.IO and m.payload
                )
                if len(data) == size:
                    self.assertEqual(hashlib.sha256(data).hexdigest(), received)
                    return True
            return False

        await until(lambda: ensureDeferred(complete()), 60, "the complete log in the bucket")
