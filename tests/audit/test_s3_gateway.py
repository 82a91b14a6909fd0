"""The whole gateway recording to S3: killed mid-session, then started again.

The gateway runs as ``twistd containerssh`` (the installed package), with
``audit.storage: s3`` against the tests' S3 server, and is killed with
SIGKILL while a session prints. The killed session's log is then only in the
spool directory; the next start recovers it: the object it uploads decodes
as the file storage's would, and the spool directory is emptied.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import Any

import yaml
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest

from tests.audit.s3_support import ANY_KEY, ANY_SECRET, client, new_bucket, s3_endpoint
from tests.integration.processes import clean_env
from tests.integration.test_audit_crash import KilledGatewayTestCase

_installed: bool | None = None


def installed_has_s3() -> bool:
    """Whether the installed package (what ``twistd`` runs) has the s3 storage (blocking)."""
    global _installed
    if _installed is None:
        probe = subprocess.run(
            [sys.executable, "-c", "import conch_container.audit.storage.s3"],
            env=clean_env(),
            cwd=tempfile.gettempdir(),
            capture_output=True,
        )
        _installed = probe.returncode == 0
    return _installed


class S3StorageKillTests(KilledGatewayTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        if not await deferToThread(installed_has_s3):
            raise SkipTest(
                "the installed conch-container predates the s3 storage; install this "
                "checkout (scripts/test does) to run the gateway with it"
            )
        self.endpoint = await deferToThread(s3_endpoint)
        self.s3 = client(self.endpoint)
        self.bucket = await deferToThread(new_bucket, self.s3)
        super().setUp()
        # The storage's codes are debug events: the test looks for some.
        config = yaml.safe_load(self.config.getContent())
        config["log"]["level"] = "debug"
        self.config.setContent(yaml.safe_dump(config).encode())

    def audit_settings(self) -> dict[str, Any]:
        self.spool = self.dir.child("spool")
        self.spool.makedirs()
        return {
            "enable": True,
            "format": "binary",
            "storage": "s3",
            "s3": {
                "local": self.spool.path,
                "accessKey": ANY_KEY,
                "secretKey": ANY_SECRET,
                "bucket": self.bucket,
                "region": "us-east-1",
                "endpoint": self.endpoint,
                "pathStyleAccess": True,
            },
            "intercept": {"stdout": True},
        }

    def objects(self) -> dict[str, int]:
        answer = self.s3.list_objects_v2(Bucket=self.bucket)
        return {o["Key"]: o["Size"] for o in answer.get("Contents", [])}

    async def test_sigkill_then_recovered(self) -> None:
        """The killed session's spooled log is uploaded by the next start, then removed."""
        received = await self.kill_mid_session()
        spooled = [p for p in self.spool.children() if "." not in p.basename()]
        killed = max(spooled, key=lambda p: p.getsize())
        self.check_log(killed.path, received)
        self.assertNotIn(killed.basename(), await deferToThread(self.objects))
        output = await self.restart_and_stop()
        self.assertIn(b'"code":"AUDIT_S3_RECOVERING"', output)
        self.assertEqual(self.spool.children(), [])
        objects = await deferToThread(self.objects)
        self.assertIn(killed.basename(), objects)
        download = self.dir.child("downloaded")
        body = await deferToThread(self.s3.get_object, Bucket=self.bucket, Key=killed.basename())
        download.setContent(body["Body"].read())
        self.check_log(download.path, received)
