"""The ``s3`` storage against a real S3-compatible server: what ends up in the bucket.

Small streams go up in one request when they end; large ones in parts while
they are written, finished when they end; either way the object is the
spool file byte for byte, and the spool is emptied afterwards.
"""

from __future__ import annotations

import errno
import os

from twisted.application.service import IService
from twisted.internet.threads import deferToThread
from twisted.python.threadpool import ThreadPool
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.audit.storage import localfile
from conch_container.audit.storage.s3 import S3Storage
from conch_container.config.audit import AuditS3MetadataConfig
from conch_container.interfaces import IAuditSink, IAuditStorage
from tests.audit.s3_case import MiB, S3TestCase, digest


class UploadTests(S3TestCase):
    async def test_provides_interfaces(self) -> None:
        """The storage is an IAuditStorage and an IService; its sinks are IAuditSinks."""
        storage = await self.storage()
        self.assertTrue(verifyObject(IAuditStorage, storage))
        self.assertTrue(verifyObject(IService, storage))
        sink = await self.open(storage, self.info())
        self.assertTrue(verifyObject(IAuditSink, sink))
        await self.close(sink)

    async def test_small_log_single_upload(self) -> None:
        """A stream smaller than a part is one PutObject, byte-identical; the spool is emptied."""
        storage = await self.storage()
        data = os.urandom(100_000)
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, data, chunk=1000)
        self.assertEqual(
            sorted(os.listdir(self.local)),
            [info.connection_id, info.connection_id + ".metadata.json"],
        )
        await self.close(sink)
        self.assertTrue(await done)
        stored = await self.get(info.connection_id)
        self.assertEqual(stored["Body"], data)
        self.assertEqual(stored["ContentType"], "application/octet-stream")
        self.assertEqual(self.spooled(), [])
        self.assertEqual(await self.uploads(info.connection_id), [])
        codes = self.codes()
        self.assertIn(messages.AUDIT_S3_SINGLE_UPLOAD.code, codes)
        self.assertIn(messages.AUDIT_S3_SINGLE_UPLOAD_COMPLETE.code, codes)
        self.assertNotIn(messages.AUDIT_S3_MULTIPART_UPLOAD.code, codes)

    async def test_large_stream_uploads_parts_while_open(self) -> None:
        """A 30 MB stream has its full parts on the server before it ends, then is complete.

        Part numbers start at 1; every part but the last is the part size.
        """
        storage = await self.storage()
        data = os.urandom(30_000_000)
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, data)
        full_parts = len(data) // (5 * MiB)

        async def parts_up() -> bool:
            return len(await self.parts(info.connection_id)) == full_parts

        await self.eventually(parts_up, f"{full_parts} parts uploaded while the stream is open")
        parts = await self.parts(info.connection_id)
        self.assertEqual([p["PartNumber"] for p in parts], list(range(1, full_parts + 1)))
        self.assertEqual({p["Size"] for p in parts}, {5 * MiB})
        self.assertEqual(await self.keys(), [])
        await self.close(sink)
        self.assertTrue(await done)
        stored = await self.get(info.connection_id)
        self.assertEqual(len(stored["Body"]), len(data))
        self.assertEqual(digest(stored["Body"]), digest(data))
        self.assertEqual(self.spooled(), [])
        self.assertEqual(await self.uploads(info.connection_id), [])
        codes = self.codes()
        for code in (
            messages.AUDIT_S3_MULTIPART_UPLOAD,
            messages.AUDIT_S3_MULTIPART_PART_UPLOADING,
            messages.AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE,
            messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZING,
            messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZED,
        ):
            self.assertIn(code.code, codes)
        self.assertEqual(codes.count(messages.AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE.code), 6)
        self.assertNotIn(messages.AUDIT_S3_SINGLE_UPLOAD.code, codes)

    async def test_exact_multiple_of_part_size(self) -> None:
        """A stream of exactly two parts is finished from those two, with no empty third."""
        storage = await self.storage()
        data = os.urandom(10 * MiB)
        info = await self.record(storage, data)
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertEqual((await self.get(info.connection_id))["Body"], data)
        finished = self.events_of(messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZED.code)
        self.assertEqual(finished[0]["parts"], 2)

    async def test_object_metadata(self) -> None:
        """The object carries ContainerSSH's metadata; username and ip only when configured."""
        storage = await self.storage(
            self.config(metadata=AuditS3MetadataConfig(username=True, ip=True))
        )
        info = self.info(country="DE")
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, b"header")
        updated = self.info(info.connection_id, country="DE", authenticated=True, username="alice")
        await deferToThread(sink.update, updated)
        await self.close(sink)
        self.assertTrue(await done)
        stored = await self.get(info.connection_id)
        self.assertEqual(
            stored["Metadata"],
            {
                "timestamp": "1700000000",
                "authenticated": "true",
                "country": "DE",
                "username": "alice",
                "ip": "192.0.2.7",
            },
        )

    async def test_object_metadata_default(self) -> None:
        """Without ``metadata.username``/``ip``, neither is exposed."""
        storage = await self.storage()
        info = await self.record(storage, b"x", self.info(username="bob", authenticated=True))
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        stored = await self.get(info.connection_id)
        self.assertEqual(
            stored["Metadata"],
            {"timestamp": "1700000000", "authenticated": "true", "country": "XX"},
        )

    async def test_acl(self) -> None:
        """``acl`` is given to S3 as the canned ACL of the object."""
        storage = await self.storage(self.config(acl="public-read"))
        info = await self.record(storage, b"x")
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        acl = await deferToThread(
            self.s3.get_object_acl, Bucket=self.bucket, Key=info.connection_id
        )
        grants = {(g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]}
        self.assertIn(("http://acs.amazonaws.com/groups/global/AllUsers", "READ"), grants)

    async def test_part_size_clamped(self) -> None:
        """An ``uploadPartSize`` beyond 5 GiB is taken as 5 GiB."""
        storage = S3Storage(None, self.log, self.config(upload_part_size=6 * 1024 * MiB))
        self.assertEqual(storage.part_size, 5 * 1024 * MiB)

    async def test_remove_failed(self) -> None:
        """An uploaded stream that cannot be removed: AUDIT_S3_REMOVE_FAILED; it stays."""
        refused = os.path.join(self.local, "0ddba11")

        def remove(path: str) -> None:
            if path == refused:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            os.remove(path)

        self.patch(localfile, "remove", remove)
        storage = await self.storage()
        info = await self.record(storage, b"data", self.info("0ddba11"))
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        failures = self.events_of(messages.AUDIT_S3_REMOVE_FAILED.code)
        self.assertEqual([f["file"] for f in failures], [refused])
        self.assertEqual(self.spooled(), ["0ddba11"])
        self.assertEqual((await self.get("0ddba11"))["Body"], b"data")

    async def test_failed_start_releases_pool(self) -> None:
        """A client that cannot be built fails the start; the stop still ends the pool."""
        pool = ThreadPool(minthreads=0, maxthreads=2, name="audit-s3-test")
        storage = await self.storage(
            self.config(endpoint="no scheme"), start=False, thread_pool=pool
        )
        with self.assertRaises(ValueError):
            await storage.startService()
        self.assertTrue(pool.started)
        await storage.stopService()
        self.assertFalse(pool.started)

    async def test_empty_stream(self) -> None:
        """A stream closed before anything was written is an empty object."""
        storage = await self.storage()
        info = await self.record(storage, b"")
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertEqual((await self.get(info.connection_id))["Body"], b"")
