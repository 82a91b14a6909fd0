"""The Docker settings are checked at load, not at the first login."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import yaml
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from conch_container import cli, messages
from conch_container.backend.docker.configcheck import check_docker_config
from conch_container.config import ConfigError, load_config, parse_config
from conch_container.tap import Options
from tests.config.material import ed25519_pem, fixture, write

#: A wrong type deep inside the container settings: the engine wants nanoseconds.
DEEP_WRONG_TYPE = {"image": "busybox", "healthcheck": {"test": ["CMD", "true"], "retries": "x"}}
DEEP_WRONG_PATH = "docker.execution.container.healthcheck.retries"


def docker(container: dict[str, Any], **execution: Any) -> dict[str, Any]:
    return {"docker": {"execution": {"container": container, **execution}}}


class CheckDockerConfigTests(SynchronousTestCase):
    def test_valid(self) -> None:
        """A well-formed section passes without warnings."""
        config = parse_config(docker({"image": "busybox", "env": ["A=1"]}))
        self.assertEqual(check_docker_config(config), ())

    def test_wrong_type_deep(self) -> None:
        """A wrong type deep in docker.execution.container is a ConfigError naming its path."""
        with self.assertRaises(ConfigError) as raised:
            check_docker_config(parse_config(docker(DEEP_WRONG_TYPE)))
        self.assertEqual(
            raised.exception.key_path, "docker.execution.container.healthcheck.retries"
        )
        self.assertIn("integer", raised.exception.problem)

    def test_wrong_type_in_host(self) -> None:
        """The host settings are checked too."""
        config = parse_config(docker({"image": "busybox"}, host={"memory": "lots"}))
        with self.assertRaises(ConfigError) as raised:
            check_docker_config(config)
        self.assertEqual(raised.exception.key_path, "docker.execution.host.memory")

    def test_unknown_keys_warned(self) -> None:
        """Each unknown key is one warning with its path, under CONFIG_DOCKER_UNKNOWN_KEY."""
        config = parse_config(docker({"image": "busybox", "imagee": "x"}, host={"cpuz": 1}))
        warnings = check_docker_config(config)
        self.assertEqual(
            [(w.code, w.key_path) for w in warnings],
            [
                (messages.CONFIG_DOCKER_UNKNOWN_KEY, "docker.execution.container.imagee"),
                (messages.CONFIG_DOCKER_UNKNOWN_KEY, "docker.execution.host.cpuz"),
            ],
        )

    def test_containerssh_fixtures(self) -> None:
        """ContainerSSH's own example and full 0.4 dump pass, without a warning."""
        for name in ("config.example.yaml", "config-0.4-full.yaml"):
            with open(fixture(name), encoding="utf-8") as file:
                data = yaml.safe_load(file)
            data["ssh"].pop("hostkeys", None)  # files on ContainerSSH's machine
            self.assertEqual(check_docker_config(parse_config(data)), (), name)


class LoadTimeTests(SynchronousTestCase):
    """check-config, dump-config and twistd's options all run the check before anything starts."""

    def setUp(self) -> None:
        self.stderr = io.StringIO()
        self.patch(sys, "stderr", self.stderr)
        self.patch(sys, "stdout", io.StringIO())
        self.directory = os.path.abspath(self.mktemp())

    def write_config(self, container: dict[str, Any]) -> str:
        data = {
            "ssh": {"hostkeys": [ed25519_pem()]},
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8"}}},
            "log": {"destination": "test"},
            **docker(container),
        }
        return write(self.directory, "config.yaml", yaml.safe_dump(data), mode=0o600)

    def test_check_config_refuses(self) -> None:
        """check-config exits 1 and names the key path of a wrong type deep in the container."""
        path = self.write_config(DEEP_WRONG_TYPE)
        load_config(path)  # the schema alone accepts it: the tables are the backend's
        self.assertEqual(cli.main(["check-config", "-c", path]), 1)
        self.assertIn(
            f"{path}: docker.execution.container.healthcheck.retries:", self.stderr.getvalue()
        )

    def test_check_config_warns_once(self) -> None:
        """check-config prints each unknown key as a warning and accepts the file."""
        path = self.write_config({"image": "busybox", "imagee": "x"})
        self.assertEqual(cli.main(["check-config", "-c", path]), 0)
        self.assertIn(
            "warning: docker.execution.container.imagee: not a Docker Engine API field",
            self.stderr.getvalue(),
        )
        self.assertIn("(CONFIG_DOCKER_UNKNOWN_KEY)", self.stderr.getvalue())

    def test_dump_config_refuses(self) -> None:
        path = self.write_config(DEEP_WRONG_TYPE)
        self.assertEqual(cli.main(["dump-config", "-c", path]), 1)

    def test_twistd_refuses_before_starting(self) -> None:
        """twistd's options refuse the file, naming the key path, before any service exists."""
        path = self.write_config(DEEP_WRONG_TYPE)
        with self.assertRaises(usage.UsageError) as raised:
            Options().parseOptions(["--config", path])
        self.assertIn(DEEP_WRONG_PATH, str(raised.exception))
