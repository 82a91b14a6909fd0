"""A gateway killed with SIGKILL mid-session leaves an audit log that decodes.

The gateway runs as ``twistd containerssh`` in its own process, records a
session that prints a line every few milliseconds, and is killed while the
session runs. What it wrote decodes up to the last batch it flushed, with a
warning that the stream ends early, never an error; and a gateway started
again on the same state takes over and removes the killed run's container.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.audit.codec.binaryread import BinaryLogReader
from conch_container.audit.message import MessageType
from conch_container.backend.docker.containerconfig import LABEL_USERNAME
from tests.docker_support import docker_client
from tests.integration.gateway import SSH, reactor
from tests.integration.processes import (
    TWISTD,
    Output,
    clean_env,
    free_port,
    signal_quietly,
    twistd_args,
    until,
    until_accepting,
    write_static_gateway,
)

#: The session's program: numbered lines, one every 10 ms, for a minute at most.
PRINTER = "i=0; while [ $i -lt 6000 ]; do i=$((i+1)); echo line-$i; sleep 0.01; done"


def expected_output(lines: int = 6000) -> bytes:
    return b"".join(b"line-%d\n" % i for i in range(1, lines + 1))


class KilledGatewayTestCase(TestCase):
    """A twistd gateway with a static user, recording to ``audit_settings()``."""

    timeout = 180

    def setUp(self) -> None:
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required")
        self.docker = docker_client()
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.user = f"crash{os.getpid()}"
        self.port = free_port()
        config, key = write_static_gateway(
            self.dir, self.user, self.port, audit=self.audit_settings()
        )
        self.config = FilePath(config)
        self.key_file = FilePath(key)

    def audit_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    async def start_gateway(self) -> tuple[Any, Output]:
        gateway = Output()
        process = reactor.spawnProcess(
            gateway, TWISTD[0], twistd_args(self.config.path), env=clean_env(), path=self.dir.path
        )
        self.addCleanup(signal_quietly, process, signal.SIGKILL)
        try:
            await until_accepting(self.port, 30)
        except AssertionError:
            self.fail(f"the gateway did not start: {gateway.output.decode(errors='replace')}")
        return process, gateway

    async def kill_mid_session(self) -> bytes:
        """Start the gateway and a printing session; SIGKILL the gateway; what the client got."""
        process, gateway = await self.start_gateway()
        client = Output()
        reactor.spawnProcess(
            client,
            SSH,
            [
                SSH, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                "-o", f"UserKnownHostsFile={self.dir.child('known').path}",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", self.key_file.path,
                "-p", str(self.port), f"{self.user}@127.0.0.1", PRINTER,
            ],
            env=clean_env(),
        )  # fmt: skip
        # The client has line 300 about two seconds after line 100: the recorder
        # writes a batch within milliseconds, so line 100 is on disk by then,
        # while what came in the last few milliseconds may not be (SIGKILL).
        await until(lambda: b"line-300\n" in client.output, 60, "the session printing")
        process.signalProcess(signal.SIGKILL)
        await gateway.ended
        await client.ended
        return client.output

    async def restart_and_stop(self) -> bytes:
        """Start the gateway again on the same state, then stop it; its output."""
        process, gateway = await self.start_gateway()
        await until(
            lambda: self.containers_of_user().addCallback(lambda found: found == []),
            60,
            "the killed run's container removed",
        )
        process.signalProcess(signal.SIGTERM)
        await gateway.ended
        return gateway.output

    def containers_of_user(self) -> Any:
        return deferToThread(
            self.docker.containers, all=True, filters={"label": f"{LABEL_USERNAME}={self.user}"}
        )

    def check_log(self, data_path: str, received: bytes) -> None:
        """The log decodes, with a warning, to the session's output so far: at least line
        100, which the client had seconds before the gateway was killed."""
        with open(data_path, "rb") as f:
            reader = BinaryLogReader(f)
            messages = list(reader)
        self.assertIsNotNone(reader.warning, "a killed gateway's log ends early")
        kinds = [m.type for m in messages]
        self.assertEqual(kinds[0], MessageType.CONNECT)
        self.assertIn(MessageType.EXEC, kinds)
        self.assertNotIn(MessageType.DISCONNECT, kinds)
        recorded = b"".join(
            m.payload["data"] for m in messages if m.type == MessageType.IO and m.payload
        )
        self.assertTrue(expected_output().startswith(recorded), recorded[-200:])
        self.assertIn(b"line-100\n", recorded)
        self.assertIn(b"line-100\n", received)


class FileStorageKillTests(KilledGatewayTestCase):
    def audit_settings(self) -> dict[str, Any]:
        self.audit_dir = self.dir.child("audit")
        self.audit_dir.makedirs()
        return {
            "enable": True,
            "format": "binary",
            "storage": "file",
            "file": {"directory": self.audit_dir.path},
            "intercept": {"stdout": True},
        }

    async def test_sigkill_mid_session(self) -> None:
        received = await self.kill_mid_session()
        # The largest: the others are the port probes' connections.
        log = max(self.audit_dir.children(), key=lambda p: p.getsize())
        self.check_log(log.path, received)
        await self.restart_and_stop()
