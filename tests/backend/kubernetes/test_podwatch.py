"""Following a pod with a watch: the event reader, and waits that see a change when it happens."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.python.threadpool import ThreadPool
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from conch_container import messages
from conch_container.backend.kubernetes.connection import (
    ClusterSettings,
    thd_api_client,
)
from conch_container.backend.kubernetes.credentials import Credentials
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.backend.kubernetes.podwatch import (
    MAX_EVENT,
    MAX_QUEUED,
    PodWatch,
    WatchEnded,
    open_pod_watch,
)
from conch_container.backend.kubernetes.ratelimit import TokenBucket
from conch_container.testing.kubeapi import KubeAPIServer
from tests.docker_support import GUEST_IMAGE, docker_client

TOKEN = "watch-token"


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


POD = {"metadata": {"name": "p", "resourceVersion": "7"}, "status": {"phase": "Pending"}}


class PodWatchReaderTests(SynchronousTestCase):
    """The JSON-lines reader, fed by hand."""

    def setUp(self) -> None:
        self.watch = PodWatch()
        self.transport = StringTransport()
        self.watch.makeConnection(self.transport)

    def take(self) -> Any:
        return self.successResultOf(self.watch.next())

    def ended(self) -> str:
        return str(self.failureResultOf(self.watch.next(), WatchEnded).value)

    def test_events_split_anywhere(self) -> None:
        """Lines cut at any byte, or several in one read, give each state in order."""
        data = line("ADDED", POD) + line("MODIFIED", {**POD, "x": 1}) + line("DELETED", POD)
        for byte in data:
            self.watch.dataReceived(bytes([byte]))
        self.assertEqual(self.take(), POD)
        self.assertEqual(self.take()["x"], 1)
        self.assertIsNone(self.take())

    def test_waiting_reader_gets_the_next_event(self) -> None:
        d = self.watch.next()
        self.assertNoResult(d)
        self.watch.dataReceived(line("MODIFIED", POD))
        self.assertEqual(self.successResultOf(d), POD)

    def test_bookmarks_are_skipped(self) -> None:
        self.watch.dataReceived(line("BOOKMARK", {"metadata": {}}) + line("MODIFIED", POD))
        self.assertEqual(self.take(), POD)

    def test_error_event_ends_the_watch(self) -> None:
        """An ERROR (410 Gone: the version expired) ends it, saying which."""
        self.watch.dataReceived(line("ERROR", {"code": 410, "reason": "Expired"}))
        self.assertIn("410 Expired", self.ended())
        self.assertTrue(self.transport.disconnecting or self.transport.producerState != "")

    def test_garbage_ends_the_watch(self) -> None:
        self.watch.dataReceived(b"<html>\n")
        self.assertIn("not JSON", self.ended())

    def test_not_a_watch_event_ends_the_watch(self) -> None:
        """A server that ignores watch=true answers a list: not an event."""
        self.watch.dataReceived(json.dumps({"kind": "PodList", "items": []}).encode() + b"\n")
        self.assertIn("not a watch event", self.ended())

    def test_overlong_line_ends_the_watch(self) -> None:
        self.watch.dataReceived(b"x" * (MAX_EVENT + 1))
        self.assertIn("longer than", self.ended())

    def test_unread_events_are_bounded(self) -> None:
        for _ in range(MAX_QUEUED + 1):
            self.watch.dataReceived(line("MODIFIED", POD))
        for _ in range(MAX_QUEUED):
            self.take()
        self.assertIn("not taken", self.ended())

    def test_end_of_stream_fails_a_waiting_reader(self) -> None:
        d = self.watch.next()
        self.watch.connectionLost(None)
        self.failureResultOf(d, WatchEnded)

    def test_cancelling_next_closes_the_watch(self) -> None:
        d = self.watch.next()
        d.cancel()
        self.failureResultOf(d)
        self.ended()


class WatchAgainstAPIServerTests(TestCase):
    """Against the test API server, whose pods are containers of the local engine."""

    timeout = 120

    async def setUp(self) -> None:
        docker_client()  # skips without a Docker engine
        self.server = KubeAPIServer(reactor, TOKEN, tls_dir=None)
        url = await self.server.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        self.settings = ClusterSettings(
            base_url=url, credentials=Credentials(token=TOKEN), timeout=10
        )
        self.pool = ThreadPool(0, 2, name="kubernetes-test")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        cluster = thd_api_client(self.settings, None, 2)
        self.addCleanup(cluster.thd_close)
        # Polling alone would take an hour: only a watch can end the waits below.
        self.api = PodAPI(
            reactor, self.pool, cluster, TokenBucket(reactor, 1000, 1000), poll_interval=3600
        )

    async def create(self, command: list[str]) -> str:
        pod = {
            "metadata": {"generateName": "watch-"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "shell", "image": GUEST_IMAGE, "command": command}],
            },
        }
        created = await self.api.create_pod("default", pod)
        name = str(created["metadata"]["name"])
        self.addCleanup(lambda: Deferred.fromCoroutine(self.api.delete_pod("default", name)))
        return name

    async def test_ready_seen_through_the_watch(self) -> None:
        name = await self.create(["/bin/sh", "-c", "sleep 600"])
        pod = await self.api.wait_until_ready("default", name, 60)
        self.assertEqual(pod["status"]["phase"], "Running")

    async def test_exit_code_seen_through_the_watch(self) -> None:
        name = await self.create(["/bin/sh", "-c", "sleep 1; exit 7"])
        self.assertEqual(await self.api.wait_until_terminated("default", name, "shell", 60), 7)

    async def test_deletion_ends_the_wait(self) -> None:
        """A pod deleted while waited for ends the wait at once, not after a poll: its
        container killed (137), or the pod gone, whichever the watch shows first."""
        name = await self.create(["/bin/sh", "-c", "sleep 600"])
        await self.api.wait_until_ready("default", name, 60)
        waiting = Deferred.fromCoroutine(
            self.api.wait_until_terminated("default", name, "shell", 60)
        )
        await self.api.delete_pod("default", name)
        try:
            self.assertEqual(await waiting, 137)
        except KubernetesError as e:
            self.assertEqual(e.code, messages.KUBERNETES_EXIT_CODE_FAILED)
            self.assertIn("gone", e.explanation)

    async def test_refused_watch_is_an_error_with_the_code(self) -> None:
        bad = ClusterSettings(
            base_url=self.settings.base_url, credentials=Credentials(token="wrong"), timeout=10
        )
        try:
            await open_pod_watch(
                reactor,
                bad,
                "/api/v1/namespaces/default/pods",
                "p",
                "1",
                timeout_seconds=5,
                code=messages.KUBERNETES_POD_WAIT_FAILED,
            )
        except KubernetesError as e:
            self.assertEqual((e.code, e.status), (messages.KUBERNETES_POD_WAIT_FAILED, 401))
        else:
            self.fail("the watch was not refused")
