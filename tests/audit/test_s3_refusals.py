"""The ``s3`` storage when S3 refuses: one clear error, no retries, the log kept locally.

Credentials are checked for real, by a server that enforces them and IAM
policies (:func:`tests.audit.s3_support.auth_server`).
"""

from __future__ import annotations

import os

from twisted.internet.threads import deferToThread

from conch_container import messages
from conch_container.codes import Level
from conch_container.config.audit import AuditS3Config
from tests.audit.s3_case import AuthS3TestCase, MiB


class RefusedTests(AuthS3TestCase):
    async def test_unknown_access_key(self) -> None:
        """An access key S3 does not know: one error, AUDIT_S3_SINGLE_UPLOAD_FAILED; kept."""
        storage = await self.storage(self.config(access_key="AKIANOSUCHKEY"))
        data = b"recorded"
        info = await self.record(storage, data)
        self.assertFalse(await storage.wait_uploaded(info.connection_id))
        failures = self.events_of(messages.AUDIT_S3_SINGLE_UPLOAD_FAILED.code)
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["cs_level"], Level.ERROR)
        self.assertEqual(failures[0]["status"], 403)
        self.assertEqual(failures[0]["s3Code"], "InvalidAccessKeyId")
        self.assertEqual(self.codes().count(messages.AUDIT_S3_SINGLE_UPLOAD.code), 1)
        self.assert_kept(info.connection_id, data)
        self.assertEqual(await self.keys(), [])

    async def test_wrong_secret_multipart(self) -> None:
        """A wrong secret key fails the start of a multipart upload once; the stream is kept."""
        storage = await self.storage(self.config(secret_key="not-the-secret"))
        data = os.urandom(6 * MiB)
        info = await self.record(storage, data)
        self.assertFalse(await storage.wait_uploaded(info.connection_id))
        code = messages.AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED.code
        failures = self.events_of(code)
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["s3Code"], "SignatureDoesNotMatch")
        self.assertNotIn(messages.AUDIT_S3_MULTIPART_PART_UPLOADING.code, self.codes())
        self.assert_kept(info.connection_id, data)

    async def test_missing_bucket(self) -> None:
        """A bucket that does not exist: one AUDIT_S3_SINGLE_UPLOAD_FAILED (404); kept."""
        storage = await self.storage(self.config(bucket=self.bucket + "-missing"))
        data = b"recorded"
        info = await self.record(storage, data)
        self.assertFalse(await storage.wait_uploaded(info.connection_id))
        failures = self.events_of(messages.AUDIT_S3_SINGLE_UPLOAD_FAILED.code)
        self.assertEqual([(f["status"], f["s3Code"]) for f in failures], [(404, "NoSuchBucket")])
        self.assert_kept(info.connection_id, data)


class RevokedTests(AuthS3TestCase):
    """The gateway's access key revoked while streams are being uploaded."""

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.user = await deferToThread(self.auth.new_user)

    def user_config(self) -> AuditS3Config:
        return self.config(access_key=self.user.key, secret_key=self.user.secret)

    async def test_part_upload_refused(self) -> None:
        """A part refused (403) fails once, as AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED; kept."""
        storage = await self.storage(self.user_config())
        data = os.urandom(12 * MiB)
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, data[: 5 * MiB])

        async def first_part() -> bool:
            return len(await self.parts(info.connection_id)) == 1

        await self.eventually(first_part, "the first part uploaded")
        await deferToThread(self.auth.revoke, self.user)
        await self.write(sink, data[5 * MiB :])
        await self.close(sink)
        self.assertFalse(await done)
        failures = self.events_of(messages.AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED.code)
        self.assertEqual([(f["part"], f["status"]) for f in failures], [(2, 403)])
        self.assertEqual(failures[0]["cs_level"], Level.ERROR)
        self.assert_kept(info.connection_id, data)

    async def test_finalization_refused(self) -> None:
        """Finishing refused (403) fails once, as AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED."""
        storage = await self.storage(self.user_config())
        data = os.urandom(10 * MiB)
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, data)

        async def both_parts() -> bool:
            return len(await self.parts(info.connection_id)) == 2

        await self.eventually(both_parts, "both parts uploaded")
        await deferToThread(self.auth.revoke, self.user)
        await self.close(sink)
        self.assertFalse(await done)
        failures = self.events_of(messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED.code)
        self.assertEqual([f["status"] for f in failures], [403])
        self.assertIn(messages.AUDIT_S3_MULTIPART_UPLOAD_FINALIZING.code, self.codes())
        self.assert_kept(info.connection_id, data)
