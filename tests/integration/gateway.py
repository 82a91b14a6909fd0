"""Runs the whole gateway in-process, on the real reactor, for end-to-end tests.

The gateway is assembled exactly as ``twistd containerssh`` assembles it
(:class:`conch_container.tap.Options` and :func:`conch_container.tap.makeService`)
from a configuration file written by the test, and listens on a free
loopback port. Users log in through a real webhook server
(:class:`conch_container.testing.webhook.AuthWebhookResource`) on another
loopback port, and land in real containers of the local Docker engine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, cast

import yaml
from twisted.conch.ssh import keys
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.config.ssh import CONTAINERSSH_MACS
from conch_container.tap import Options, makeService
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser, listen_tcp
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.ssh.harness import new_ed25519_pem

reactor: Any = global_reactor
SSH = shutil.which("ssh")
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def public_line(pem: str) -> str:
    """The authorized_keys form (no comment) of a private key's public half."""
    key = keys.Key.fromString(pem)
    return " ".join(key.public().toString("openssh").decode().split()[:2])


class GatewayTestCase(TestCase):
    """Starts a webhook server and a gateway per test; checks nothing is left behind."""

    timeout = 120
    #: Extra configuration merged over the default test config (top-level sections).
    config_overrides: dict[str, Any] = {}

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        if SSH is None:
            self.fail("the OpenSSH client (ssh) is required for the end-to-end tests")
        self.docker = docker_client()
        self.dir = FilePath(self.mktemp())
        self.dir.makedirs()
        self.client_pem = new_ed25519_pem()
        self.key_file = self.dir.child("id_ed25519")
        self.key_file.setContent(self.client_pem.encode())
        os.chmod(self.key_file.path, 0o600)
        self.webhook = AuthWebhookResource(
            {
                "alice": WebhookUser(
                    password="wonderland", authorized_keys=[public_line(self.client_pem)]
                ),
            }
        )
        self.webhook_port, self.webhook_url = listen_tcp(reactor, self.webhook)
        self.addCleanup(self.webhook_port.stopListening)
        return Deferred.fromCoroutine(self.start_gateway())

    def config_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            # ContainerSSH's MACs: Conch's client (tests.ssh.harness), which
            # several tests drive, speaks no -etm MAC and no AEAD cipher.
            "ssh": {
                "listen": "127.0.0.1:0",
                "hostkeys": [new_ed25519_pem()],
                "macs": list(CONTAINERSSH_MACS),
            },
            "auth": {
                "password": {"method": "webhook", "webhook": {"url": self.webhook_url}},
                "publicKey": {"method": "webhook", "webhook": {"url": self.webhook_url}},
            },
            "log": {"destination": "test", "level": "debug"},
            "backend": "docker",
            "docker": {
                "execution": {
                    "container": {"image": GUEST_IMAGE},
                    "imagePullPolicy": "Never",
                    "disableAgent": True,
                    "idleCommand": IDLE_COMMAND,
                    "shellCommand": ["/bin/bash"],
                },
            },
        }
        for section, value in self.config_overrides.items():
            if isinstance(value, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **value}
            else:
                data[section] = value
        return data

    async def start_gateway(self) -> None:
        config_file = self.dir.child("config.yaml")
        config_file.setContent(yaml.safe_dump(self.config_data()).encode())
        options = Options()
        options.parseOptions(["--config", config_file.path])
        self.options = options
        # Under twistd the observer replaces twistd's own; here it listens beside trial's.
        assert options.log_output is not None
        globalLogPublisher.addObserver(options.log_output.observer)
        self.addCleanup(globalLogPublisher.removeObserver, options.log_output.observer)
        self.root: Any = cast(Any, makeService(options, reactor))
        await self.root.startService()
        listener = self.root.getServiceNamed("ssh")
        self.port = listener.port.getHost().port
        self.instance_id = self.root_instance_id()
        self.addCleanup(self.assert_nothing_left)
        self.addCleanup(self.root.stopService)

    def root_instance_id(self) -> str:
        factory = self.root.getServiceNamed("ssh")._factory
        return str(factory.instance_id)

    @property
    def log_records(self) -> list[Any]:
        """What the gateway logged (the ``test`` log destination keeps it in memory)."""
        assert self.options.log_output is not None and self.options.log_output.memory is not None
        return list(self.options.log_output.memory.records)

    def logged_codes(self) -> list[str]:
        return [record.code for record in self.log_records]

    async def own_container_ids(self) -> list[str]:
        """The ids of the engine's containers carrying this gateway's instance label."""
        found = await deferToThread(
            self.docker.containers,
            all=True,
            filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"},
        )
        return [c["Id"] for c in found]

    async def assert_nothing_left(self) -> None:
        """After the test (and the gateway's stop), the engine holds none of its containers."""
        left = await deferToThread(
            self.docker.containers,
            all=True,
            filters={"label": f"{LABEL_INSTANCE}={self.instance_id}"},
        )
        if left:
            for container in left:
                await deferToThread(self.docker.remove_container, container["Id"], force=True)
            self.fail(f"containers left behind: {[c['Id'][:12] for c in left]}")

    def ssh_args(self, *options: str, user: str = "alice", key: bool = True) -> list[str]:
        # OpenSSH keeps the first value it sees for an option: the test's come first.
        args = [*options,
            "-F", "/dev/null",
            "-o", f"UserKnownHostsFile={self.dir.child('known_hosts').path}",
            "-o", "StrictHostKeyChecking=no",
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=30",
            "-p", str(self.port),
        ]  # fmt: skip
        if key:
            args += ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-i", self.key_file.path]
        return [*args, f"{user}@127.0.0.1"]

    async def ssh(
        self, command: str | None, *options: str, user: str = "alice", password: str | None = None
    ) -> tuple[bytes, bytes, int]:
        """Run the OpenSSH client; returns (stdout, stderr, exit status)."""
        if password is None:
            executable, argv = SSH, self.ssh_args(*options, user=user)
        else:
            executable = shutil.which("sshpass")
            if executable is None:
                self.fail("sshpass is required for password logins")
            argv = ["-p", password, SSH or "ssh", *self.ssh_args(
                "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                *options, user=user, key=False,
            )]  # fmt: skip
        if command is not None:
            argv.append(command)
        assert executable is not None
        out, err, code = await getProcessOutputAndValue(executable, argv, env=dict(os.environ))
        return out, err, code


if TYPE_CHECKING:
    _GatewayBase = GatewayTestCase
else:
    _GatewayBase = object


class ControlMasterMixin(_GatewayBase):
    """OpenSSH connection sharing for a :class:`GatewayTestCase`.

    :meth:`start_master` logs in once; ``ssh -S`` with :attr:`control` then
    opens further sessions on that connection.
    """

    def setUp(self) -> Any:
        d = super().setUp()
        # A unix socket path must stay short (108 bytes): not under the test's directory.
        directory = tempfile.mkdtemp(prefix="cm-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        self.control = os.path.join(directory, "s")
        return d

    async def start_master(self) -> None:
        """Log in once; the master keeps the connection for the following ``ssh -S`` calls."""
        assert SSH is not None
        argv = self.ssh_args("-M", "-S", self.control, "-f", "-N")
        _out, err, code = await getProcessOutputAndValue(SSH, argv, env=dict(os.environ))
        self.assertEqual(code, 0, err)
        self.addCleanup(self.stop_master)

    async def stop_master(self) -> None:
        """Close the shared connection, if its master is still there."""
        if os.path.exists(self.control):
            assert SSH is not None
            await getProcessOutputAndValue(
                SSH, self.ssh_args("-S", self.control, "-O", "exit"), env=dict(os.environ)
            )
