"""No container is ever left behind, however a connection or the gateway ends.

Each way a connection can end is one test: a normal logout, a client killed
mid-session, a client that stops answering without closing its connection
(found by keepalives), a container that fails to start or an image that cannot
be pulled, a gateway stopped with ``SIGTERM`` and a gateway killed with
``SIGKILL`` and started again. After each, the engine holds no container of
the gateway within ``docker.timeouts.containerStop``.

The connection endings also run in ``session`` mode. A second copy of a
running gateway, started by mistake, must not remove the first one's
containers (``test_two_instances`` has copies that can both listen).

The first cases run the gateway in-process; those where the gateway's process
stops or dies run ``twistd containerssh`` as a separate process, from this
checkout, with the real OpenSSH client.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.tap import SHUTDOWN_DEADLINE
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import SSH, GatewayTestCase, reactor
from tests.integration.processes import (
    TWISTD,
    Output,
    accepting,
    free_port,
    log_records,
    signal_quietly,
    ssh_key_args,
    twistd_args,
    until,
    write_static_gateway,
)

#: ``docker.timeouts.containerStop`` in these tests: the bound on every removal.
CONTAINER_STOP = 10.0
#: ``ssh.clientAliveInterval`` and ``ssh.clientAliveCountMax`` in these tests.
ALIVE_INTERVAL, ALIVE_COUNT = 1.0, 3
#: Open sessions while the gateway is stopped or killed.
SESSIONS = 20
#: The project checkout, so that ``twistd`` runs the code under test.
CHECKOUT = str(Path(__file__).resolve().parents[2])
LONG_COMMAND = "echo started; sleep 300"


def instance_containers(client: Any, instance_id: str) -> Deferred[list[dict[str, Any]]]:
    """Every container (any state) labelled with ``instance_id``, asked in a thread."""
    return deferToThread(
        client.containers, all=True, filters={"label": f"{LABEL_INSTANCE}={instance_id}"}
    )


class ConnectionEndTests(GatewayTestCase):
    """A connection ends, the gateway stays: its container goes within containerStop."""

    config_overrides = {
        "ssh": {"clientAliveInterval": f"{ALIVE_INTERVAL:g}s", "clientAliveCountMax": ALIVE_COUNT},
        "docker": {"timeouts": {"containerStop": f"{CONTAINER_STOP:g}s"}},
    }

    def containers(self) -> Deferred[list[dict[str, Any]]]:
        return instance_containers(self.docker, self.instance_id)

    async def assert_gone_within(self, seconds: float) -> None:
        async def none_left() -> bool:
            return not await self.containers()

        await until(lambda: Deferred.fromCoroutine(none_left()), seconds, "no container left")
        # The engine's answer to the remove call reaches the gateway a moment
        # after the container is gone from its list.
        await until(
            lambda: "DOCKER_CONTAINER_REMOVE_SUCCESSFUL" in self.logged_codes(),
            5,
            "DOCKER_CONTAINER_REMOVE_SUCCESSFUL logged",
        )

    async def open_session(self) -> Any:
        """An OpenSSH client in a long-running session, once its container runs."""
        assert SSH is not None
        client = Output()
        process = reactor.spawnProcess(
            client, SSH, [SSH, *self.ssh_args(), LONG_COMMAND], env=dict(os.environ)
        )
        self.addCleanup(lambda: client.ended)
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        await until(lambda: b"started" in client.output, 60, "the session started")
        self.assertEqual(len(await self.containers()), 1)
        return process

    async def test_logout(self) -> None:
        """After a normal logout the connection's container is removed."""
        out, err, code = await self.ssh("echo hello")
        self.assertEqual((out, code), (b"hello\n", 0), err)
        await self.assert_gone_within(CONTAINER_STOP)

    async def test_client_killed(self) -> None:
        """A client killed with SIGKILL mid-session closes TCP: the container is removed."""
        process = await self.open_session()
        process.signalProcess(signal.SIGKILL)
        await self.assert_gone_within(CONTAINER_STOP)

    async def test_client_stops_answering(self) -> None:
        """A client that answers nothing but keeps TCP open is found by keepalives.

        The client is frozen with SIGSTOP: its socket stays open, nothing is
        ever answered. After clientAliveCountMax unanswered keepalives the
        gateway closes the connection, and the container goes with it.
        """
        process = await self.open_session()
        process.signalProcess(signal.SIGSTOP)
        self.addCleanup(signal_quietly, process, signal.SIGCONT)
        detection = ALIVE_INTERVAL * (ALIVE_COUNT + 1)
        await self.assert_gone_within(detection + CONTAINER_STOP)
        self.assertIn("SSH_KEEPALIVE_NORESP", self.logged_codes())
        signal_quietly(process, signal.SIGCONT)
        signal_quietly(process, signal.SIGKILL)


class SessionModeConnectionEndTests(ConnectionEndTests):
    """The same endings in ``session`` mode, where each channel has its own container."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["docker"]["execution"] = {**data["docker"]["execution"], "mode": "session"}
        return data


#: Per test of :class:`FailedLaunchTests`: the ``docker.execution`` keys that break it.
BROKEN_EXECUTION: dict[str, dict[str, Any]] = {
    "test_unknown_user": {"container": {"image": GUEST_IMAGE, "user": "nobody-here"}},
    "test_missing_idle_command": {"idleCommand": ["/nonexistent/idle"]},
    "test_bind_mount_rejected_at_start": {
        # The file exists, so the engine creates the container; mounting a file
        # over a directory fails only when the container starts.
        "host": {"binds": ["/etc/hostname:/etc"]},
    },
    "test_pull_of_missing_image": {
        "container": {"image": "conch-container/does-not-exist:latest"},
        "imagePullPolicy": "IfNotPresent",
    },
}


class FailedLaunchTests(GatewayTestCase):
    """A container that cannot be pulled or started leaves nothing behind."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["docker"]["execution"].update(BROKEN_EXECUTION[self._testMethodName])
        data["docker"]["timeouts"] = {
            "containerStart": "5s",
            "containerStop": f"{CONTAINER_STOP:g}s",
        }
        return data

    async def assert_refused_cleanly(self, failed_code: str) -> None:
        _out, err, code = await self.ssh("echo hello")
        self.assertEqual(code, 255, err)
        self.assertNotIn(b"hello", err)
        codes = self.logged_codes()
        self.assertIn(failed_code, codes)
        # The connection's container is removed before the user is refused.
        self.assertEqual(await instance_containers(self.docker, self.instance_id), [])

    async def assert_start_failed(self) -> None:
        await self.assert_refused_cleanly("DOCKER_CONTAINER_START_FAILED")
        codes = self.logged_codes()
        self.assertIn("DOCKER_CONTAINER_CREATE", codes)
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", codes)

    async def test_unknown_user(self) -> None:
        """``user`` names no account in the image: created, not started, removed."""
        await self.assert_start_failed()

    async def test_missing_idle_command(self) -> None:
        """The idle command does not exist: created, not started, removed."""
        await self.assert_start_failed()

    async def test_bind_mount_rejected_at_start(self) -> None:
        """A bind mount the runtime refuses at start: created, not started, removed."""
        await self.assert_start_failed()

    async def test_pull_of_missing_image(self) -> None:
        """IfNotPresent with an image no registry serves: the pull fails, nothing is created."""
        await self.assert_refused_cleanly("DOCKER_IMAGE_PULL_FAILED")
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.logged_codes())


class Gateway:
    """``twistd containerssh`` in its own process, run from this checkout."""

    def __init__(self, config: FilePath[str], port: int) -> None:
        self.config = config
        self.port = port
        self.out = Output()
        #: The output of every run so far, the current one last.
        self.runs: list[Output] = []
        self.process: Any = None

    def start(self) -> None:
        self.out = Output()
        self.runs.append(self.out)
        env = {**os.environ, "PYTHONPATH": CHECKOUT}
        self.process = reactor.spawnProcess(
            self.out,
            TWISTD[0],
            twistd_args(self.config.path),
            env=env,
            path=self.config.parent().path,
        )

    def accepting(self) -> bool:
        return accepting(self.port)

    @property
    def instance_id(self) -> str:
        """The instance id the current run logged (``CORE_INSTANCE_ID``, before it listens)."""
        [instance_id] = _instance_ids(self.records())
        return instance_id

    def instance_ids(self) -> set[str]:
        """The instance ids of every run so far."""
        return {i for run in self.runs for i in _instance_ids(log_records(run.output))}

    def records(self) -> list[dict[str, Any]]:
        """The gateway's ljson log lines, parsed (other lines skipped)."""
        return log_records(self.out.output)

    def kill(self) -> None:
        if self.process is not None:
            signal_quietly(self.process, signal.SIGKILL)


def _instance_ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["details"]["instanceId"] for r in records if r["code"] == "CORE_INSTANCE_ID"]


class GatewayProcessTests(TestCase):
    """The gateway's process stops or dies with 20 users logged in."""

    timeout = 300

    def setUp(self) -> None:
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required")
        self.docker = docker_client()
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        port = free_port()
        config, key = write_static_gateway(
            self.dir,
            "leaver",
            port,
            docker_timeouts={"containerStop": f"{CONTAINER_STOP:g}s"},
        )
        self.key_file = FilePath(key)
        self.gateway = Gateway(FilePath(config), port)
        self.addCleanup(self.remove_leftovers)
        self.addCleanup(self.gateway.kill)

    async def remove_leftovers(self) -> None:
        """Whatever a failed test left is removed (and was reported by the test)."""
        for instance_id in self.gateway.instance_ids():
            for container in await instance_containers(self.docker, instance_id):
                await deferToThread(self.docker.remove_container, container["Id"], force=True)

    async def start_gateway(self) -> None:
        self.gateway.start()
        await until(self.gateway.accepting, 60, "the gateway listens")

    async def open_sessions(self, count: int) -> list[Output]:
        assert SSH is not None
        clients = []
        for _ in range(count):
            client = Output()
            process = reactor.spawnProcess(
                client,
                SSH,
                [
                    *ssh_key_args(
                        SSH,
                        self.key_file.path,
                        self.dir.child("known").path,
                        self.gateway.port,
                        "leaver@127.0.0.1",
                    ),
                    LONG_COMMAND,
                ],
                env=dict(os.environ),
            )
            self.addCleanup(_ended, client)
            self.addCleanup(signal_quietly, process, signal.SIGKILL)
            clients.append(client)
        await until(
            lambda: all(b"started" in c.output for c in clients),
            120,
            f"{count} sessions started",
        )
        running = await instance_containers(self.docker, self.gateway.instance_id)
        self.assertEqual(len(running), count)
        return clients

    async def test_sigterm_with_open_sessions(self) -> None:
        """SIGTERM with 20 open sessions: all containers removed, exit within the deadline."""
        await self.start_gateway()
        clients = await self.open_sessions(SESSIONS)
        started = time.monotonic()
        self.gateway.process.signalProcess(signal.SIGTERM)
        code, by_signal = await self.gateway.out.ended
        elapsed = time.monotonic() - started
        output = self.gateway.out.output.decode(errors="replace")
        self.assertLess(elapsed, SHUTDOWN_DEADLINE, output)
        self.assertIn((code, by_signal), [(0, None), (None, signal.SIGTERM)], output)
        for client in clients:
            await client.ended
        left = await instance_containers(self.docker, self.gateway.instance_id)
        self.assertEqual(left, [], output)
        codes = [r["code"] for r in self.gateway.records()]
        self.assertNotIn("SERVICE_SHUTDOWN_DEADLINE", codes)

    async def test_sigkill_then_restart(self) -> None:
        """SIGKILL with 20 open sessions, then a restart with the same config.

        The dead gateway's containers are still in the engine; the new run
        takes over its instance id (the kernel released the dead run's lock),
        finds them by it, logs DOCKER_CONTAINER_RECONCILE with their number
        and ids, and removes them before its listener accepts a connection.
        """
        await self.start_gateway()
        await self.open_sessions(SESSIONS)
        dead_id = self.gateway.instance_id
        self.gateway.process.signalProcess(signal.SIGKILL)
        await self.gateway.out.ended
        orphans = await instance_containers(self.docker, dead_id)
        self.assertEqual(len(orphans), SESSIONS)

        await self.start_gateway()
        self.assertEqual(self.gateway.instance_id, dead_id)
        # The listener accepted: by then nothing of the previous run may remain.
        left = await instance_containers(self.docker, self.gateway.instance_id)
        output = self.gateway.out.output.decode(errors="replace")
        self.assertEqual(left, [], output)
        codes = [r["code"] for r in self.gateway.records()]
        self.assertIn("DOCKER_CONTAINER_RECONCILE", codes, output)
        self.assertIn("SSH_AVAILABLE", codes, output)
        self.assertLess(codes.index("DOCKER_CONTAINER_RECONCILE"), codes.index("SSH_AVAILABLE"))
        record = self.gateway.records()[codes.index("DOCKER_CONTAINER_RECONCILE")]
        self.assertEqual(record["details"]["count"], SESSIONS)
        self.assertEqual(
            sorted(record["details"]["containerIds"].split(", ")),
            sorted(c["Id"] for c in orphans),
        )
        self.assertNotIn("DOCKER_CONTAINER_REMOVE_FAILED", codes, output)

        self.gateway.process.signalProcess(signal.SIGTERM)
        await self.gateway.out.ended

    async def test_running_copy_keeps_its_containers(self) -> None:
        """A second copy started by mistake leaves the running copy's containers alone.

        The first copy holds its instance id, so the second gets another one:
        its start-up clean-up finds nothing of its own and removes nothing;
        then it fails to listen on the taken address, and the first copy's
        users keep their sessions.
        """
        await self.start_gateway()
        clients = await self.open_sessions(2)
        first = self.gateway
        second = Gateway(first.config, first.port)
        second.start()
        self.addCleanup(second.kill)
        code, _ = await second.out.ended
        output = second.out.output.decode(errors="replace")
        self.assertEqual(code, 1, output)
        codes = [r["code"] for r in second.records()]
        self.assertNotEqual(second.instance_id, first.instance_id)
        self.assertNotIn("DOCKER_CONTAINER_RECONCILE", codes, output)
        self.assertNotIn("DOCKER_CONTAINER_REMOVE", codes, output)
        self.assertIn("SSH_START_FAILED", codes)
        self.assertEqual(len(await instance_containers(self.docker, first.instance_id)), 2)
        self.assertTrue(all(c.ended.called is False for c in clients))
        first.process.signalProcess(signal.SIGTERM)
        await first.out.ended


def _ended(output: Output) -> Deferred[tuple[int | None, int | None]]:
    return output.ended
