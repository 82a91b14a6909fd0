"""No pod is ever left behind by ``backend: kubernetes``, however a connection or the gateway ends.

The same guarantees as the Docker backend's (``test_no_leftovers``), each
proved on ``twistd containerssh`` in its own process, run from this
checkout, with the real OpenSSH client, against the test API server
(:mod:`conch_container.testing.kubeapi`, in this test's process, its pods
containers of the local Docker engine):

- a client killed mid-session: its pod is deleted within ``podStop``;
- the gateway stopped with ``SIGTERM`` with sessions open: every pod is
  deleted before the process exits;
- the gateway killed with ``SIGKILL``, then started again with the same
  configuration: the new run takes over the instance id and deletes the
  dead run's pods before its listener accepts a connection;
- two replicas (two instance ids) sharing one namespace: killing and
  restarting one never deletes the other's pods, and its users keep their
  sessions.

A pod counts as deleted once the API server marks it for deletion
(``deletionTimestamp``): deletion is asynchronous in Kubernetes too.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.backend.kubernetes.client import ClusterClient
from conch_container.backend.kubernetes.podmanifest import instance_selector
from conch_container.config import parse_config
from conch_container.tap import SHUTDOWN_DEADLINE
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import SSH, reactor
from tests.integration.processes import (
    Output,
    free_port,
    signal_quietly,
    ssh_key_args,
    until,
    write_static_gateway,
)
from tests.integration.test_no_leftovers import LONG_COMMAND, Gateway
from tests.testing.kubeapi.support import serve_in_process, started_client

TOKEN = "no-orphan-token"
NAMESPACE = "users"
#: ``kubernetes.timeouts.podStop`` in these tests: the bound on every deletion.
POD_STOP = 20.0
#: Open sessions while a gateway is stopped or killed.
SESSIONS = 12


def kubernetes_section(url: str) -> dict[str, Any]:
    return {
        "connection": {"host": url, "bearerToken": TOKEN},
        "pod": {
            "metadata": {"namespace": NAMESPACE, "generateName": "noorphan-"},
            "spec": {"containers": [{"name": "shell", "image": GUEST_IMAGE}]},
            "idleCommand": ["/bin/sh", "-c", "sleep 3600"],
            "shellCommand": ["/bin/sh"],
        },
        "timeouts": {"podStart": "60s", "podStop": f"{POD_STOP:g}s"},
    }


class Replica:
    """One gateway process (its own directory, port and so instance id) and its user's key."""

    def __init__(self, directory: FilePath[str], url: str) -> None:
        directory.makedirs()
        self.dir = directory
        port = free_port()
        config, key = write_static_gateway(
            directory,
            "leaver",
            port,
            backend="kubernetes",
            kubernetes=kubernetes_section(url),
            # Each pod's removal is logged at debug level.
            log={"level": "debug"},
        )
        self.key_file = key
        self.gateway = Gateway(FilePath(config), port)

    async def start(self) -> None:
        self.gateway.start()
        await until(self.listening, 90, "the gateway listens")

    def listening(self) -> bool:
        if self.gateway.out.ended.called:
            raise AssertionError(self.output())
        return self.gateway.accepting()

    def output(self) -> str:
        return self.gateway.out.output.decode(errors="replace")

    def codes(self) -> list[str]:
        return [r["code"] for r in self.gateway.records()]

    def ssh(self, test: TestCase, command: str) -> tuple[Any, Output]:
        """An OpenSSH client running ``command`` through this gateway."""
        assert SSH is not None
        client = Output()
        process = reactor.spawnProcess(
            client,
            SSH,
            [
                *ssh_key_args(
                    SSH,
                    self.key_file,
                    self.dir.child("known").path,
                    self.gateway.port,
                    "leaver@127.0.0.1",
                ),
                command,
            ],
            env=dict(os.environ),
        )
        test.addCleanup(lambda: client.ended)
        test.addCleanup(signal_quietly, process, signal.SIGKILL)
        return process, client


class KubernetesNoOrphanTests(TestCase):
    timeout = 400

    async def setUp(self) -> None:
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required")
        docker_client()  # skips without a Docker engine
        # First, so the server stops (removing its containers) after the gateways.
        _, self.url = await serve_in_process(self, TOKEN)
        client = started_client(self)
        config = parse_config({"backend": "kubernetes", "kubernetes": kubernetes_section(self.url)})
        self.cluster: ClusterClient = await client.cluster_for(config.kubernetes)
        self.root = FilePath(self.mktemp())

    def replica(self, name: str) -> Replica:
        replica = Replica(self.root.child(name), self.url)
        self.addCleanup(replica.gateway.kill)
        return replica

    async def live_pods(self, instance_id: str) -> list[str]:
        """The names of the pods labelled with ``instance_id`` and not being deleted."""
        pods = await self.cluster.pods.list_pods(NAMESPACE, instance_selector(instance_id))
        return sorted(
            p["metadata"]["name"] for p in pods if "deletionTimestamp" not in p["metadata"]
        )

    async def open_sessions(self, replica: Replica, count: int) -> list[Output]:
        clients = [replica.ssh(self, LONG_COMMAND)[1] for _ in range(count)]
        await until(
            lambda: all(b"started" in c.output for c in clients),
            180,
            f"{count} sessions started",
        )
        self.assertEqual(len(await self.live_pods(replica.gateway.instance_id)), count)
        return clients

    async def assert_none_live_within(self, instance_id: str, seconds: float) -> None:
        async def none_live() -> bool:
            return not await self.live_pods(instance_id)

        await until(lambda: Deferred.fromCoroutine(none_live()), seconds, "no pod left")

    async def test_client_killed(self) -> None:
        """A client killed with SIGKILL mid-session: its pod is deleted within podStop."""
        replica = self.replica("a")
        await replica.start()
        process, client = replica.ssh(self, LONG_COMMAND)
        await until(lambda: b"started" in client.output, 180, "the session started")
        instance_id = replica.gateway.instance_id
        self.assertEqual(len(await self.live_pods(instance_id)), 1)
        process.signalProcess(signal.SIGKILL)
        await self.assert_none_live_within(instance_id, POD_STOP)
        await until(
            lambda: "KUBERNETES_POD_REMOVE_SUCCESSFUL" in replica.codes(),
            5,
            "KUBERNETES_POD_REMOVE_SUCCESSFUL logged",
        )
        replica.gateway.process.signalProcess(signal.SIGTERM)
        await replica.gateway.out.ended

    async def test_sigterm_with_open_sessions(self) -> None:
        """SIGTERM with sessions open: every pod is deleted before the gateway exits."""
        replica = self.replica("a")
        await replica.start()
        clients = await self.open_sessions(replica, SESSIONS)
        instance_id = replica.gateway.instance_id
        replica.gateway.process.signalProcess(signal.SIGTERM)
        started = reactor.seconds()
        code, by_signal = await replica.gateway.out.ended
        output = replica.output()
        self.assertLess(reactor.seconds() - started, SHUTDOWN_DEADLINE, output)
        self.assertIn((code, by_signal), [(0, None), (None, signal.SIGTERM)], output)
        # Checked once the process is gone: nothing it asked for is still pending.
        self.assertEqual(await self.live_pods(instance_id), [], output)
        codes = replica.codes()
        self.assertEqual(codes.count("KUBERNETES_POD_REMOVE_SUCCESSFUL"), SESSIONS, output)
        self.assertNotIn("SERVICE_SHUTDOWN_DEADLINE", codes, output)
        for client in clients:
            await client.ended

    async def test_sigkill_then_restart(self) -> None:
        """SIGKILL with sessions open, then a restart: the orphans go before it listens."""
        replica = self.replica("a")
        await replica.start()
        await self.open_sessions(replica, SESSIONS)
        dead_id = replica.gateway.instance_id
        replica.gateway.process.signalProcess(signal.SIGKILL)
        await replica.gateway.out.ended
        orphans = await self.live_pods(dead_id)
        self.assertEqual(len(orphans), SESSIONS)

        await replica.start()
        self.assertEqual(replica.gateway.instance_id, dead_id)
        output = replica.output()
        # The listener accepted: by then no pod of the previous run may be live.
        self.assertEqual(await self.live_pods(dead_id), [], output)
        codes = replica.codes()
        self.assertEqual(codes.count("KUBERNETES_POD_REMOVE_SUCCESSFUL"), SESSIONS, output)
        last_removed = len(codes) - 1 - codes[::-1].index("KUBERNETES_POD_REMOVE_SUCCESSFUL")
        self.assertLess(last_removed, codes.index("SSH_AVAILABLE"), output)
        self.assertNotIn("KUBERNETES_POD_REMOVE_FAILED", codes, output)
        [record] = [
            r
            for r in replica.gateway.records()
            if r["code"] == "KUBERNETES_POD_REMOVE" and "count" in r["details"]
        ]
        self.assertEqual(record["details"]["count"], SESSIONS)
        replica.gateway.process.signalProcess(signal.SIGTERM)
        await replica.gateway.out.ended

    async def test_replicas_keep_each_others_pods(self) -> None:
        """Two replicas in one namespace: restarting one never touches the other's pods."""
        first, second = self.replica("first"), self.replica("second")
        await first.start()
        await second.start()
        self.assertNotEqual(first.gateway.instance_id, second.gateway.instance_id)
        await self.open_sessions(first, 2)
        kept = await self.open_sessions(second, 2)
        second_pods = await self.live_pods(second.gateway.instance_id)

        first.gateway.process.signalProcess(signal.SIGKILL)
        await first.gateway.out.ended
        await first.start()
        self.assertEqual(await self.live_pods(first.gateway.instance_id), [], first.output())
        first.gateway.process.signalProcess(signal.SIGTERM)
        await first.gateway.out.ended

        self.assertEqual(await self.live_pods(second.gateway.instance_id), second_pods)
        self.assertTrue(all(not c.ended.called for c in kept))
        self.assertNotIn("KUBERNETES_POD_REMOVE", second.codes(), second.output())
        second.gateway.process.signalProcess(signal.SIGTERM)
        await second.gateway.out.ended
        self.assertEqual(await self.live_pods(second.gateway.instance_id), [])
