"""Settings deep in the API structures are checked at load, not at the first login.

``conch-container check-config``, ``dump-config`` and ``twistd containerssh``
(its options, before it daemonises) all refuse a wrong type deep inside
``docker.execution.container`` or ``kubernetes.pod.spec``, naming its key
path, and report each unknown Docker field once.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import yaml
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli
from conch_container.tap import Options
from tests.config.material import ed25519_pem, write

#: Wrong types deep inside the structures, and the key paths that name them.
DOCKER_WRONG = (
    {
        "docker": {
            "execution": {"container": {"image": "busybox", "healthcheck": {"interval": [1]}}}
        }
    },
    "docker.execution.container.healthcheck.interval",
)
DOCKER_LABEL_WRONG = (
    {"docker": {"execution": {"container": {"image": "busybox", "labels": {"a": [1]}}}}},
    "docker.execution.container.labels.a",
)
KUBERNETES_WRONG = (
    {
        "kubernetes": {
            "pod": {
                "spec": {
                    "containers": [
                        {"name": "shell", "image": "x", "ports": [{"containerPort": "x"}]}
                    ]
                }
            }
        }
    },
    "kubernetes.pod.spec.containers[0].ports[0].containerPort",
)


class _ConfigFileTestCase(SynchronousTestCase):
    """A configuration file written per test; the CLI's output captured."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdout", io.StringIO())
        self.directory = os.path.abspath(self.mktemp())

    def write_config(self, sections: dict[str, Any]) -> str:
        data = {
            "ssh": {"hostkeys": [ed25519_pem()]},
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8"}}},
            "log": {"destination": "test"},
            **sections,
        }
        return write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)


class LoadTimeTests(_ConfigFileTestCase):
    def test_check_config_refuses(self) -> None:
        """check-config exits 1 and names the key path of a wrong type deep in a structure."""
        for sections, path in (DOCKER_WRONG, DOCKER_LABEL_WRONG, KUBERNETES_WRONG):
            with self.subTest(path=path):
                config = self.write_config(sections)
                self.assertEqual(cli.main(["check-config", "-c", config]), 1)
                self.assertIn(f"{config}: {path}: must be", self.stderr.getvalue())

    def test_check_config_warns_once(self) -> None:
        """check-config prints an unknown Docker field once, as a warning, and accepts the file."""
        config = self.write_config(
            {"docker": {"execution": {"container": {"image": "busybox", "imagee": "x"}}}}
        )
        self.assertEqual(cli.main(["check-config", "-c", config]), 0)
        output = self.stderr.getvalue()
        warning = "warning: docker.execution.container.imagee: not a Docker Engine API field"
        self.assertEqual(output.count(warning), 1, output)
        self.assertIn("(CONFIG_DOCKER_UNKNOWN_KEY)", output)

    def test_dump_config_refuses(self) -> None:
        for sections, _ in (DOCKER_WRONG, KUBERNETES_WRONG):
            config = self.write_config(sections)
            self.assertEqual(cli.main(["dump-config", "-c", config]), 1)

    def test_twistd_refuses_before_starting(self) -> None:
        """twistd's options refuse the file, naming the key path, before any service exists."""
        for sections, path in (DOCKER_WRONG, KUBERNETES_WRONG):
            with self.subTest(path=path):
                config = self.write_config(sections)
                with self.assertRaises(usage.UsageError) as raised:
                    Options().parseOptions(["--config", config])
                self.assertIn(path, str(raised.exception))


class SSHOfferTests(_ConfigFileTestCase):
    """check-config refuses what the SSH server would refuse to start with."""

    def test_no_usable_host_key_algorithm(self) -> None:
        """An Ed25519 host key and only ``ssh-rsa`` allowed: refused, naming the list."""
        config = self.write_config(
            {"ssh": {"hostkeys": [ed25519_pem()], "hostKeyAlgorithms": ["ssh-rsa"]}}
        )
        self.assertEqual(cli.main(["check-config", "-c", config]), 1)
        self.assertIn(
            f"{config}: ssh.hostKeyAlgorithms: none of the configured ssh.hostKeyAlgorithms",
            self.stderr.getvalue(),
        )

    def test_generated_key_counts_as_ed25519(self) -> None:
        """Without host keys the gateway generates an Ed25519 one: a list without
        ``ssh-ed25519`` could not sign with it; nothing is written to the file."""
        config = self.write_config({"ssh": {"hostKeyAlgorithms": ["rsa-sha2-512"]}})
        before = open(config).read()
        self.assertEqual(cli.main(["check-config", "-c", config]), 1)
        self.assertIn("ssh.hostKeyAlgorithms: ", self.stderr.getvalue())
        self.assertEqual(open(config).read(), before)

    def test_no_usable_cipher(self) -> None:
        """A cipher list with nothing this server implements: refused, naming ``ssh.ciphers``."""
        config = self.write_config(
            {"ssh": {"hostkeys": [ed25519_pem()], "ciphers": ["3des-cbc-nonexistent"]}}
        )
        self.assertEqual(cli.main(["check-config", "-c", config]), 1)
        self.assertIn(f"{config}: ssh.ciphers: none of the configured", self.stderr.getvalue())

    def test_default_lists_accepted(self) -> None:
        """The defaults, with a configured or a generated host key, pass."""
        for ssh in ({"hostkeys": [ed25519_pem()]}, {}):
            with self.subTest(ssh=ssh):
                config = self.write_config({"ssh": ssh})
                self.assertEqual(
                    cli.main(["check-config", "-c", config]), 0, self.stderr.getvalue()
                )
