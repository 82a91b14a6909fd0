"""What a killed gateway left in the spool directory, taken up at the next start.

Each test lays out the spool directory as a killed run leaves it (a stream
file, its sidecar, and the multipart upload that run had begun for it), then
starts a storage on it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.threads import deferToThread

from conch_container import messages
from tests.audit.s3_case import AuthS3TestCase, MiB, S3TestCase, digest, reactor
from tests.audit.tcp_proxy import proxy_to

SIDECAR = {
    "startTime": 1_650_000_000,
    "remoteAddr": "198.51.100.4",
    "authenticated": True,
    "username": "carol",
    "country": "NL",
}


class Spooling:
    """Lays out a killed run's spool directory (mixed into an S3 test case)."""

    local: str
    bucket: str
    s3: Any

    def spool(
        self, connection_id: str, data: bytes, sidecar: dict[str, Any] | bytes | None = None
    ) -> str:
        path = os.path.join(self.local, connection_id)
        with open(path, "wb") as file:
            file.write(data)
        if sidecar is not None:
            raw = sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode()
            with open(path + ".metadata.json", "wb") as file:
                file.write(raw)
        return path

    async def stale_upload(self, key: str) -> str:
        """A multipart upload of ``key`` with one part, as the killed run left it."""

        def thd_stale() -> str:
            upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            self.s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"s" * MiB
            )
            return str(upload_id)

        return await deferToThread(thd_stale)


class RecoveryTests(Spooling, S3TestCase):
    async def test_recovers_spooled_stream(self) -> None:
        """A spooled stream: its stale upload aborted, uploaded whole with its sidecar, removed."""
        data = os.urandom(300_000)
        self.spool("a1b2", data, SIDECAR)
        stale = await self.stale_upload("a1b2")
        storage = await self.storage(self.config())
        self.assertTrue(await storage.wait_uploaded("a1b2"))
        self.assertEqual(await self.uploads("a1b2"), [])
        stored = await self.get("a1b2")
        self.assertEqual(stored["Body"], data)
        self.assertEqual(
            stored["Metadata"],
            {"timestamp": "1650000000", "authenticated": "true", "country": "NL"},
        )
        self.assertEqual(self.spooled(), [])
        codes = self.codes()
        self.assertIn(messages.AUDIT_S3_RECOVERING.code, codes)
        aborting = self.events_of(messages.AUDIT_S3_MULTIPART_ABORTING.code)
        self.assertEqual([e["uploadId"] for e in aborting], [stale])
        self.assertIn(messages.AUDIT_S3_SINGLE_UPLOAD_COMPLETE.code, codes)

    async def test_recovers_large_stream_in_parts(self) -> None:
        """A spooled stream larger than a part is uploaded in parts."""
        data = os.urandom(11 * MiB)
        self.spool("c3d4", data, SIDECAR)
        storage = await self.storage()
        self.assertTrue(await storage.wait_uploaded("c3d4"))
        self.assertEqual(digest((await self.get("c3d4"))["Body"]), digest(data))
        done = self.events_of(messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZED.code)
        self.assertEqual(done[0]["parts"], 3)
        self.assertEqual(self.spooled(), [])

    async def test_missing_sidecar(self) -> None:
        """No sidecar: AUDIT_S3_FAILED_READING_METADATA_FILE; uploaded with the file's time."""
        path = self.spool("e5f6", b"data")
        os.utime(path, (1_600_000_000, 1_600_000_000))
        storage = await self.storage()
        self.assertTrue(await storage.wait_uploaded("e5f6"))
        unread = self.events_of(messages.AUDIT_S3_FAILED_READING_METADATA_FILE.code)
        self.assertEqual(len(unread), 1)
        stored = await self.get("e5f6")
        self.assertEqual(stored["Body"], b"data")
        self.assertEqual(stored["Metadata"]["timestamp"], "1600000000")
        self.assertEqual(stored["Metadata"]["authenticated"], "false")

    async def test_corrupt_sidecar(self) -> None:
        """A sidecar that is no sidecar is reported the same way; the stream is uploaded."""
        self.spool("a7a8", b"data", b'{"startTime": "yesterday"')
        self.spool("a9b0", b"data", {**SIDECAR, "authenticated": "yes"})
        storage = await self.storage()
        self.assertTrue(await storage.wait_uploaded("a7a8"))
        self.assertTrue(await storage.wait_uploaded("a9b0"))
        unread = self.events_of(messages.AUDIT_S3_FAILED_READING_METADATA_FILE.code)
        self.assertEqual(len(unread), 2)
        self.assertEqual(self.spooled(), [])

    async def test_orphan_sidecar(self) -> None:
        """A sidecar whose stream is gone: AUDIT_S3_NO_SUCH_QUEUE_ENTRY, and it is removed."""
        self.spool("b1b2", b"x", SIDECAR)
        os.remove(os.path.join(self.local, "b1b2"))
        storage = await self.storage()
        await storage.settled()
        orphans = self.events_of(messages.AUDIT_S3_NO_SUCH_QUEUE_ENTRY.code)
        self.assertEqual([e["connectionId"] for e in orphans], ["b1b2"])
        self.assertEqual(self.spooled(), [])
        self.assertEqual(await self.keys(), [])

    async def test_unreadable_entry(self) -> None:
        """An entry that cannot be looked at (a symlink loop): AUDIT_S3_FAILED_STAT_QUEUE_ENTRY."""
        os.symlink("c1c2", os.path.join(self.local, "c1c2"))
        storage = await self.storage()
        await storage.settled()
        failed = self.events_of(messages.AUDIT_S3_FAILED_STAT_QUEUE_ENTRY.code)
        self.assertEqual(len(failed), 1)
        self.assertIn("c1c2", failed[0]["file"])
        self.assertEqual(self.spooled(), ["c1c2"])

    async def test_leaves_other_entries_alone(self) -> None:
        """Empty files, names with a dot and directories are no aborted streams."""
        self.spool("d1d2", b"")
        self.spool("notes.txt", b"not a stream")
        os.mkdir(os.path.join(self.local, "d3d4"))
        storage = await self.storage()
        await storage.settled()
        self.assertEqual(self.spooled(), ["d1d2", "d3d4", "notes.txt"])
        self.assertNotIn(messages.AUDIT_S3_RECOVERING.code, self.codes())
        self.assertEqual(await self.keys(), [])

    async def test_stream_opened_before_start_is_not_recovered(self) -> None:
        """A stream this run opened before the start is live, not aborted: uploaded once."""
        storage = await self.storage(start=False)
        info = self.info()
        sink = await self.open(storage, info)
        await self.write(sink, b"early")
        await storage.startService()
        await self.close(sink)
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertNotIn(messages.AUDIT_S3_RECOVERING.code, self.codes())
        self.assertEqual((await self.get(info.connection_id))["Body"], b"early")

    async def test_start_does_not_wait_for_s3(self) -> None:
        """With S3 away, the start returns; the recovery goes on and succeeds once it is back."""
        proxy = proxy_to(self.endpoint)
        proxied = proxy.listen(reactor)
        self.addCleanup(proxy.close)
        proxy.cut()
        self.spool("f1f2", b"from before", SIDECAR)
        storage = await self.storage(self.config(endpoint=proxied))
        done = storage.wait_uploaded("f1f2")
        await self.eventually(
            lambda: len(self.events_of(messages.AUDIT_S3_MULTIPART_FAILED_LIST.code)) >= 2,
            "listing the stale uploads failing, more than once",
        )
        self.assertFalse(done.called)
        proxy.restore()
        self.assertTrue(await done)
        self.assertEqual((await self.get("f1f2"))["Body"], b"from before")


class RecoveryRefusedTests(Spooling, AuthS3TestCase):
    """Recovery with credentials that may not list or abort multipart uploads."""

    async def test_failed_list(self) -> None:
        """Listing refused: AUDIT_S3_MULTIPART_FAILED_LIST once, then the stream is uploaded."""
        self.spool("e1e2", b"data", SIDECAR)
        storage = await self.storage(self.as_user("nolist"))
        self.assertTrue(await storage.wait_uploaded("e1e2"))
        failed = self.events_of(messages.AUDIT_S3_MULTIPART_FAILED_LIST.code)
        self.assertEqual([e["reason"].split(" ")[0] for e in failed], ["AccessDenied"])
        self.assertEqual((await self.get("e1e2"))["Body"], b"data")

    async def test_failed_abort(self) -> None:
        """Aborting refused: AUDIT_S3_MULTIPART_FAILED_ABORT once, then the stream is uploaded."""
        self.spool("e3e4", b"data", SIDECAR)
        stale = await self.stale_upload("e3e4")
        storage = await self.storage(self.as_user("noabort"))
        self.assertTrue(await storage.wait_uploaded("e3e4"))
        failed = self.events_of(messages.AUDIT_S3_MULTIPART_FAILED_ABORT.code)
        self.assertEqual([e["uploadId"] for e in failed], [stale])
        self.assertEqual((await self.get("e3e4"))["Body"], b"data")
        self.assertEqual(await self.uploads("e3e4"), [stale])
