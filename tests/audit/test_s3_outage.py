"""The ``s3`` storage when S3 cannot be reached: retried until it can, or kept for later.

A proxy in front of the S3 server (:mod:`tests.audit.tcp_proxy`) resets every
connection on demand; the server itself, whose objects live in its memory,
keeps running.
"""

from __future__ import annotations

import os

import botocore.exceptions
from twisted.internet.threads import deferToThread

from conch_container import messages
from tests.audit.s3_case import MiB, S3TestCase, digest, reactor
from tests.audit.tcp_proxy import CuttableProxy, proxy_to


class OutageTests(S3TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.proxy: CuttableProxy = proxy_to(self.endpoint)
        self.proxied = self.proxy.listen(reactor)
        self.addCleanup(self.proxy.close)

    def failed_attempts(self, code: messages.MessageCode) -> int:
        return len(self.events_of(code.code))

    async def test_unreachable_during_writes_then_back(self) -> None:
        """Parts that fail while S3 is away are retried; once it is back the upload completes."""
        storage = await self.storage(self.config(endpoint=self.proxied))
        data = os.urandom(12 * MiB)
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        self.proxy.cut()
        await self.write(sink, data[: 6 * MiB])
        await self.eventually(
            lambda: (
                self.failed_attempts(messages.AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED) >= 2
            ),
            "the multipart upload failing to start, more than once",
        )
        await self.write(sink, data[6 * MiB :])
        self.proxy.restore()
        await self.eventually(
            lambda: self.failed_attempts(messages.AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE) >= 2,
            "both full parts uploaded after S3 came back",
        )
        # S3 goes away again as the stream ends: the last part and the
        # completion wait for it too.
        self.proxy.cut()
        await self.close(sink)
        await self.eventually(
            lambda: self.failed_attempts(messages.AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED) >= 2,
            "the last part failing, more than once",
        )
        self.assertFalse(done.called)
        self.assertEqual(len(self.spooled()), 2)
        self.proxy.restore()
        self.assertTrue(await done)
        stored = await self.get(info.connection_id)
        self.assertEqual(digest(stored["Body"]), digest(data))
        self.assertEqual(self.spooled(), [])
        self.assertGreater(self.proxy.refused, 0)
        failure = self.events_of(messages.AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED.code)[0]
        self.assertIn("pause", failure)
        self.assertIn("attempt", failure)

    async def test_single_upload_retried(self) -> None:
        """A small stream whose upload fails while S3 is away is uploaded once it is back."""
        storage = await self.storage(self.config(endpoint=self.proxied))
        self.proxy.cut()
        info = await self.record(storage, b"small")
        await self.eventually(
            lambda: self.failed_attempts(messages.AUDIT_S3_SINGLE_UPLOAD_FAILED) >= 2,
            "the single upload failing, more than once",
        )
        self.proxy.restore()
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertEqual((await self.get(info.connection_id))["Body"], b"small")

    async def test_down_at_shutdown_stays_spooled(self) -> None:
        """With S3 away at stop, the deadline ends the attempts and the streams stay spooled."""
        storage = await self.storage(self.config(endpoint=self.proxied), deadline=0.5)
        self.proxy.cut()
        small = await self.record(storage, b"small")
        large = self.info()
        sink = await self.open(storage, large)
        data = os.urandom(6 * MiB)
        await self.write(sink, data)
        await self.close(sink)
        open_info = self.info()
        open_sink = await self.open(storage, open_info)
        await self.write(open_sink, b"still being written")
        await self.eventually(
            lambda: (
                self.failed_attempts(messages.AUDIT_S3_SINGLE_UPLOAD_FAILED) >= 1
                and self.failed_attempts(messages.AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED)
                >= 1
            ),
            "both uploads failing",
        )
        await storage.stopService()
        deadline = self.events_of(messages.SERVICE_SHUTDOWN_DEADLINE.code)
        self.assertEqual(len(deadline), 1)
        self.assertEqual(deadline[0]["count"], 2)
        expected = sorted(
            name
            for i in (small, large, open_info)
            for name in (i.connection_id, i.connection_id + ".metadata.json")
        )
        self.assertEqual(self.spooled(), expected)
        with open(os.path.join(self.local, large.connection_id), "rb") as file:
            self.assertEqual(digest(file.read()), digest(data))
        # The recorder may still write to, and close, a sink after the stop:
        # nothing is lost and nothing is uploaded.
        await self.write(open_sink, b" and more")
        await self.close(open_sink)
        with open(os.path.join(self.local, open_info.connection_id), "rb") as file:
            self.assertEqual(file.read(), b"still being written and more")
        self.proxy.restore()
        self.assertEqual(await self.keys(), [])

    async def test_shutdown_waits_for_uploads_that_can_finish(self) -> None:
        """An upload under way at stop is finished within the deadline, and then removed."""
        storage = await self.storage(self.config(endpoint=self.proxied), deadline=60)
        self.proxy.cut()
        info = await self.record(storage, os.urandom(7 * MiB))
        await self.eventually(
            lambda: (
                self.failed_attempts(messages.AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED) >= 1
            ),
            "the upload failing",
        )
        self.proxy.restore()
        await storage.stopService()
        self.assertEqual(self.events_of(messages.SERVICE_SHUTDOWN_DEADLINE.code), [])
        self.assertEqual(self.spooled(), [])
        self.assertEqual(len((await self.get(info.connection_id))["Body"]), 7 * MiB)

    async def test_stop_is_idempotent_and_safe_before_start(self) -> None:
        """stopService before startService, and twice, does nothing harmful."""
        storage = await self.storage(start=False)
        await storage.stopService()
        await storage.stopService()
        running = await self.storage()
        first = running.stopService()
        self.assertIs(running.stopService(), first)
        await first

    async def test_stop_while_starting(self) -> None:
        """A stop that comes before the start finished waits for it, then for its uploads.

        A parent that does not wait for its children's start (a MultiService)
        may stop the storage at once: what was spooled still gets the deadline.
        """
        with open(os.path.join(self.local, "abcd"), "wb") as file:
            file.write(b"left by a killed run")
        storage = await self.storage(start=False)
        info = self.info()
        sink = await self.open(storage, info)
        await self.write(sink, b"opened before the start")
        await self.close(sink)
        starting = storage.startService()
        await storage.stopService()
        await starting
        self.assertEqual(self.spooled(), [])
        self.assertEqual((await self.get("abcd"))["Body"], b"left by a killed run")
        self.assertEqual((await self.get(info.connection_id))["Body"], b"opened before the start")

    async def test_proxy_cut_is_seen(self) -> None:
        """The proxy really stands between: a client through it fails while it is cut."""
        from tests.audit.s3_support import client

        through = client(self.proxied)
        self.proxy.cut()
        with self.assertRaises(
            (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)
        ):
            await deferToThread(through.list_objects_v2, Bucket=self.bucket)
        self.proxy.restore()
        await deferToThread(through.list_objects_v2, Bucket=self.bucket)
