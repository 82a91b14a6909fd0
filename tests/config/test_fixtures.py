"""Real ContainerSSH configuration files load (kept as regression fixtures)."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.config import (
    ConfigError,
    dump_config,
    load_config,
    parse_config,
    validate_config,
)
from conch_container.config.loader import decode, read_config_text

from .material import fixture, rsa_pem, write

EXAMPLE_HOST_KEY = "/etc/containerssh/ssh_host_rsa_key"


class FullLegacyFileTests(SynchronousTestCase):
    """``config-0.4-full.yaml``: every key of a 0.4-era dump, legacy auth included."""

    def setUp(self) -> None:
        self.config = load_config(fixture("config-0.4-full.yaml"))

    def test_legacy_auth_converted(self) -> None:
        """The root auth webhook became password and public-key webhooks, with a warning."""
        auth = self.config.auth
        self.assertEqual(auth.password.method, "webhook")
        self.assertEqual(auth.public_key.method, "webhook")
        self.assertEqual(auth.password.webhook.url, "http://localhost:8080")
        self.assertEqual(auth.password.webhook.auth_timeout, 60.0)
        self.assertEqual(
            [warning.code for warning in self.config.warnings],
            [messages.CONFIG_AUTH_URL_DEPRECATED],
        )

    def test_values(self) -> None:
        """Settings are read with their meaning, not just accepted."""
        config = self.config
        self.assertEqual(config.ssh.hostkeys, ())
        self.assertEqual(config.log.level, Level.NOTICE)
        self.assertEqual(config.docker.timeouts.container_start, 60.0)
        self.assertEqual(
            config.docker.execution.container["Image"], "containerssh/containerssh-guest-image"
        )
        # Every field of Docker's Config is written, zero values and nulls included.
        self.assertEqual(config.docker.execution.container["Env"], [])
        self.assertNotIn("Healthcheck", config.docker.execution.container)  # null
        self.assertIsNone(config.docker.execution.host)
        self.assertNotIn("creationTimestamp", config.kubernetes.pod.metadata)  # null
        self.assertEqual(config.kubernetes.pod.spec["containers"][0]["resources"], {})
        self.assertEqual(config.sshproxy.host_key_algos[-1], "ssh-ed25519")
        self.assertEqual(config.audit.s3.upload_part_size, 5242880)

    def test_dump_round_trip(self) -> None:
        """The dump of the loaded file loads to the same configuration."""
        self.assertEqual(parse_config(decode(dump_config(self.config), "yaml")), self.config)


class ExampleFileTests(SynchronousTestCase):
    """``config.example.yaml``: the file ContainerSSH ships."""

    def test_missing_host_key_file(self) -> None:
        """As shipped, its host key file is missing: a clean error naming key and file."""
        if os.path.exists(EXAMPLE_HOST_KEY):
            raise self.skipTest(f"{EXAMPLE_HOST_KEY} exists on this machine")
        with self.assertRaises(ConfigError) as raised:
            load_config(fixture("config.example.yaml"))
        self.assertEqual(raised.exception.key_path, "ssh.hostkeys[0]")
        self.assertEqual(
            str(raised.exception),
            f"ssh.hostkeys[0]: cannot read file {EXAMPLE_HOST_KEY}: No such file or directory",
        )

    def with_host_key(self) -> tuple[str, str]:
        """The example, its host key file present: (configuration path, key)."""
        directory = os.path.abspath(self.mktemp())
        key = rsa_pem()
        key_path = write(directory, "ssh_host_rsa_key", key, mode=0o600)
        text = read_config_text(fixture("config.example.yaml"))
        path = write(directory, "config.yaml", text.replace(EXAMPLE_HOST_KEY, key_path))
        return path, key

    def test_parses_with_host_key(self) -> None:
        """With its host key present, the example parses with its settings."""
        path, key = self.with_host_key()
        config = parse_config(decode(read_config_text(path), "yaml"))
        self.assertEqual(config.ssh.hostkeys, (key,))
        self.assertEqual(config.backend, "docker")
        self.assertEqual(config.auth.password.method, "webhook")
        self.assertEqual(config.auth.password.webhook.url, "http://127.0.0.1:8080")
        self.assertEqual(config.configserver.url, "http://127.0.0.1:8080/config")
        self.assertTrue(config.metrics.enable)
        self.assertEqual(config.warnings, ())

    def test_loads_with_configserver(self) -> None:
        """Loading it succeeds: the configuration server it names is supported."""
        path, _ = self.with_host_key()
        config = load_config(path)
        self.assertEqual(config.configserver.url, "http://127.0.0.1:8080/config")


class KubernetesSectionTests(SynchronousTestCase):
    """A user's ``kubernetes`` section from ContainerSSH report 209."""

    def setUp(self) -> None:
        text = read_config_text(fixture("kubernetes-section-containerssh-209.yaml"))
        section = decode(text, "yaml")
        self.data = {
            "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
            "kubernetes": section,
        }

    def test_loads(self) -> None:
        """It parses; its inline cacert stays text and its files are not checked."""
        config = parse_config(self.data)
        validate_config(config)
        connection = config.kubernetes.connection
        self.assertEqual(connection.cacert, "<cacert>\n")
        self.assertEqual(
            connection.bearer_token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )
        pod = config.kubernetes.pod
        self.assertEqual(pod.metadata, {"namespace": "tp-112520", "generateName": "containerssh-"})
        self.assertEqual(pod.spec["volumes"][0]["hostPath"]["path"], "/home/ubuntu")
        self.assertEqual(pod.spec["containers"][0]["name"], "shell")

    def test_validated_when_selected(self) -> None:
        """As the selected backend, its problems are reported."""
        config = parse_config({**self.data, "backend": "kubernetes"})
        self.assertRaises(ConfigError, validate_config, config)
