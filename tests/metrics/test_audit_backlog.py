"""The S3 audit storage's upload backlog, as the metrics read it (real S3-compatible server).

A proxy in front of the server (:mod:`tests.audit.tcp_proxy`) cuts S3 off, so
that what waits for the upload stays waiting until the test lets it through.
"""

from __future__ import annotations

import os

from conch_container.metrics import AuditBacklog, GatewayMetrics
from tests.audit.s3_case import MiB, S3TestCase, reactor
from tests.audit.tcp_proxy import CuttableProxy, proxy_to
from tests.metrics.support import sample


class BacklogTests(S3TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.proxy: CuttableProxy = proxy_to(self.endpoint)
        self.proxied = self.proxy.listen(reactor)
        self.addCleanup(self.proxy.close)

    async def test_backlog_while_s3_is_away(self) -> None:
        """A closed stream S3 cannot take is the backlog, bytes and stream, until it is uploaded."""
        storage = await self.storage(self.config(endpoint=self.proxied))
        metrics = GatewayMetrics()
        metrics.watch_audit_backlog(storage.backlog)
        self.assertEqual(storage.backlog(), AuditBacklog(bytes=0, streams=0))
        self.proxy.cut()
        info = self.info()
        sink = await self.open(storage, info)
        done = storage.wait_uploaded(info.connection_id)
        await self.write(sink, os.urandom(MiB + 12345))
        await self.close(sink)
        await self.eventually(
            lambda: storage.backlog() == AuditBacklog(bytes=MiB + 12345, streams=1),
            "the closed stream in the backlog",
        )
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_bytes"), MiB + 12345)
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_streams"), 1)
        self.proxy.restore()
        self.assertTrue(await done)
        self.assertEqual(storage.backlog(), AuditBacklog(bytes=0, streams=0))
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_bytes"), 0)
        self.assertEqual(sample(metrics, "conch_container_audit_upload_backlog_streams"), 0)
