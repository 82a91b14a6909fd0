"""The forwarding helper as the guest image carries it, in a container of the
real Docker engine, started the way the gateway starts it: the project's
agent script's ``forward-server`` sub-command, through ``docker exec -i``.

It dials busybox ``httpd`` on the container's loopback, which nothing
outside the container can reach, and brings back a 20 MB file intact. The
agent's sub-command fails with its message when the image lacks the helper.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid

from twisted.trial.unittest import SkipTest

import tests.docker_support
from conch_container.backend.docker.agent import INLINE_NAME, agent_script
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from tests.guest.test_forward_server import (
    CLOSE,
    CLOSE_WRITE,
    DATA,
    DEADLINE,
    PORT_DIAL,
    SUCCESS,
    ForwardServerTestCase,
    new_connection,
    packet,
    setup,
)

HELPER = "/usr/libexec/conch-container/forward-server"
SIZE = 20 * 1024 * 1024
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
SERVE = (
    f"mkdir -p /tmp/www && head -c {SIZE} /dev/urandom > /tmp/www/blob && "
    "sha256sum /tmp/www/blob && busybox httpd -p 127.0.0.1:8080 -h /tmp/www"
)


class EngineTests(ForwardServerTestCase):
    def setUp(self) -> None:
        client = tests.docker_support.docker_client()
        self.docker = shutil.which("docker")
        if self.docker is None:
            raise SkipTest("no docker command line")
        self.env = dict(os.environ, DOCKER_HOST=tests.docker_support.DOCKER_HOST)
        name = f"test-forward-server-{uuid.uuid4().hex[:12]}"
        container = client.create_container(
            tests.docker_support.GUEST_IMAGE,
            command=IDLE_COMMAND,
            name=name,
            labels={LABEL_INSTANCE: name},
        )
        self.addCleanup(client.remove_container, container["Id"], force=True)
        client.start(container["Id"])
        self.container = container["Id"]

    def exec(self, *argv: str, interactive: bool = False) -> list[str]:
        assert self.docker is not None
        return [self.docker, "exec", *(["-i"] if interactive else []), self.container, *argv]

    def run_in(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.exec(*argv),
            capture_output=True,
            timeout=3 * DEADLINE,
            env=self.env,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def test_dial_through_the_agent(self) -> None:
        """``containerssh-agent forward-server`` runs the image's helper, which fetches
        20 MB from a server on the container's loopback; without the helper, the
        sub-command says so and exits 1."""
        served = self.run_in("sh", "-c", SERVE)
        self.assertEqual(served.returncode, 0, served.stderr)
        digest = served.stdout.split()[0].decode()
        script = agent_script()
        agent = self.exec("sh", "-c", script, INLINE_NAME, "forward-server", interactive=True)
        helper = self.start_helper(
            agent,
            setup(PORT_DIAL),
            new_connection(1, "127.0.0.1", 8080),
            packet(DATA, 1, b"GET /blob HTTP/1.0\r\nHost: localhost\r\n\r\n"),
            packet(CLOSE_WRITE, 1),
        )
        helper.expect(SUCCESS, 0)
        helper.expect(SUCCESS, 1)
        response = helper.data_until(CLOSE_WRITE, 1)
        helper.expect(CLOSE, 1)
        headers, _, body = response.partition(b"\r\n\r\n")
        self.assertIn(b" 200 ", headers.split(b"\r\n")[0], headers[:100])
        self.assertEqual(len(body), SIZE)
        self.assertEqual(hashlib.sha256(body).hexdigest(), digest)
        self.assertEqual(helper.close(), 0)

        removed = self.run_in("rm", HELPER)
        self.assertEqual(removed.returncode, 0, removed.stderr)
        done = subprocess.run(
            agent,
            input=setup(PORT_DIAL),
            capture_output=True,
            timeout=3 * DEADLINE,
            env=self.env,
            check=False,
        )
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, b"")
        self.assertIn(
            f"forward-server: this image has no forwarding helper ({HELPER})".encode(), done.stderr
        )
