"""The test case of the ``s3`` storage tests: a real reactor, a real S3 server, a bucket of its own.

Sinks are driven the way the recorder drives them: each call blocks, and is
made on a thread (of the reactor's pool here), never on the reactor.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.testing import EventLoggingObserver
from twisted.internet.threads import deferToThread
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase

from conch_container.audit.storage.s3 import RetryPolicy, S3Storage
from conch_container.config.audit import AuditS3Config
from conch_container.deferreds import as_deferred
from conch_container.interfaces import AuditStreamInfo
from conch_container.log import CodeLogger
from tests.audit.s3_support import (
    ANY_KEY,
    ANY_SECRET,
    auth_server,
    client,
    new_bucket,
    s3_endpoint,
)
from tests.integration.processes import until

#: Short pauses between attempts, so that retries happen many times in a test.
FAST_RETRY = RetryPolicy(initial=0.05, factor=2.0, maximum=0.2)
MiB = 1024 * 1024
#: How long a test waits for something that should happen (not a measurement).
PATIENCE = 90.0

reactor: Any = global_reactor


def new_connection_id() -> str:
    return uuid.uuid4().hex


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_chunks(sink: Any, data: bytes, chunk: int) -> None:
    """Blocking: write ``data`` to ``sink`` in ``chunk``-byte writes (a recorder's thread)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        sink.write(bytes(view[start : start + chunk]))


class S3TestCase(TestCase):
    """A fresh bucket and spool directory per test, and the events logged."""

    timeout = 300

    async def setUp(self) -> None:  # type: ignore[override]
        self.prepare()
        await self.use_server(await deferToThread(s3_endpoint), ANY_KEY, ANY_SECRET)

    def prepare(self) -> None:
        """The captured events and the spool directory."""
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests.audit", observer=self.events)
        self.addCleanup(self.assert_events_render)
        self.local = os.path.abspath(self.mktemp())
        os.makedirs(self.local)

    async def use_server(self, endpoint: str, key: str, secret: str) -> None:
        """Use the S3 server at ``endpoint`` with these credentials, in a new bucket."""
        self.endpoint = endpoint
        self.key = key
        self.secret = secret
        self.s3 = client(endpoint, key, secret)
        self.bucket = await deferToThread(new_bucket, self.s3)

    def config(self, **changes: Any) -> AuditS3Config:
        """``audit.s3`` for this test's bucket and spool directory."""
        settings: dict[str, Any] = {
            "local": self.local,
            "access_key": self.key,
            "secret_key": self.secret,
            "bucket": self.bucket,
            "region": "us-east-1",
            "endpoint": self.endpoint,
            "path_style_access": True,
        }
        settings.update(changes)
        return AuditS3Config(**settings)

    async def storage(
        self, config: AuditS3Config | None = None, *, start: bool = True, **options: Any
    ) -> S3Storage:
        """An :class:`S3Storage` (started unless ``start`` is False), stopped after the test."""
        options.setdefault("retry", FAST_RETRY)
        storage = S3Storage(reactor, self.log, config or self.config(), **options)
        # Registered before the start: a pool left running would hang the test run.
        self.addCleanup(storage.stopService)
        if start:
            await storage.startService()
        return storage

    def info(self, connection_id: str | None = None, **fields: Any) -> AuditStreamInfo:
        fields.setdefault("start_time", 1_700_000_000)
        fields.setdefault("remote_addr", "192.0.2.7")
        return AuditStreamInfo(connection_id or new_connection_id(), **fields)

    async def open(self, storage: S3Storage, info: AuditStreamInfo) -> Any:
        return await deferToThread(storage.open, info)

    async def write(self, sink: Any, data: bytes, chunk: int = 64 * 1024) -> None:
        await deferToThread(write_chunks, sink, data, chunk)

    async def close(self, sink: Any) -> None:
        await deferToThread(sink.close)

    async def record(
        self, storage: S3Storage, data: bytes, info: AuditStreamInfo | None = None
    ) -> AuditStreamInfo:
        """One whole stream through a sink: open, write ``data``, close."""
        info = info or self.info()
        sink = await self.open(storage, info)
        await self.write(sink, data)
        await self.close(sink)
        return info

    # -- what the server and the disk hold

    async def get(self, key: str) -> dict[str, Any]:
        """The object ``key``: ``Body`` read into bytes, and everything else S3 said of it."""

        def thd_get() -> dict[str, Any]:
            answer = dict(self.s3.get_object(Bucket=self.bucket, Key=key))
            answer["Body"] = answer["Body"].read()
            return answer

        return await deferToThread(thd_get)

    async def keys(self) -> list[str]:
        def thd_keys() -> list[str]:
            answer = self.s3.list_objects_v2(Bucket=self.bucket)
            return [o["Key"] for o in answer.get("Contents", [])]

        return await deferToThread(thd_keys)

    async def uploads(self, key: str) -> list[str]:
        """Ids of the unfinished multipart uploads of ``key``."""

        def thd_uploads() -> list[str]:
            answer = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            return [u["UploadId"] for u in answer.get("Uploads", []) if u["Key"] == key]

        return await deferToThread(thd_uploads)

    async def parts(self, key: str) -> list[dict[str, Any]]:
        """The parts uploaded so far to ``key``'s unfinished multipart upload (none if none)."""
        found = await self.uploads(key)
        if not found:
            return []

        def thd_parts() -> list[dict[str, Any]]:
            answer = self.s3.list_parts(Bucket=self.bucket, Key=key, UploadId=found[0])
            return list(answer.get("Parts", []))

        return await deferToThread(thd_parts)

    def spooled(self) -> list[str]:
        return sorted(os.listdir(self.local))

    def assert_kept(self, connection_id: str, data: bytes) -> None:
        """The stream and its sidecar are still in the spool directory, the stream whole."""
        self.assertEqual(self.spooled(), [connection_id, connection_id + ".metadata.json"])
        with open(os.path.join(self.local, connection_id), "rb") as file:
            self.assertEqual(digest(file.read()), digest(data))

    # -- events

    def assert_events_render(self) -> None:
        """Every event logged has a format its fields fill."""
        broken = [e for e in self.events if "Unable to format event" in formatEvent(e)]
        self.assertEqual(broken, [])

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]

    def events_of(self, code: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("code") == code]

    async def eventually(self, condition: Callable[[], Any], what: str) -> None:
        """Wait until ``condition()`` (a bool, or an awaitable of one) holds.

        At most :data:`PATIENCE`: a guard against hanging, not a measurement.
        """
        await until(lambda: as_deferred(condition()), PATIENCE, what)


class AuthS3TestCase(S3TestCase):
    """Against the server that checks credentials (:func:`auth_server`), as ``admin``."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.prepare()
        self.auth = await deferToThread(auth_server)
        admin = self.auth.users["admin"]
        await self.use_server(self.auth.endpoint, admin.key, admin.secret)

    def as_user(self, name: str, **changes: Any) -> AuditS3Config:
        """This test's ``audit.s3`` with the credentials of ``name``."""
        user = self.auth.users[name]
        return self.config(access_key=user.key, secret_key=user.secret, **changes)
