"""The ContainerSSH 0.3 ``kuberun`` section is translated into ``kubernetes``, with warnings."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import (
    AppConfig,
    ConfigError,
    apply_override,
    dump_config,
    parse_config,
)

from .material import write

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
CA = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
TWO_CONTAINERS = {
    "containers": [{"name": "init", "image": "busybox"}, {"name": "shell", "image": "alpine"}]
}


def kuberun(**sections: Any) -> dict[str, Any]:
    """A document selecting the kuberun backend, with ``sections`` as its kuberun section."""
    return {"backend": "kuberun", "kuberun": sections}


def kubernetes(attribute: str) -> Callable[[AppConfig], Any]:
    """Reads a dotted attribute path below ``config.kubernetes``."""

    def read(config: AppConfig) -> Any:
        value: Any = config.kubernetes
        for name in attribute.split("."):
            value = getattr(value, name)
        return value

    return read


#: Each kuberun key: the section it is given in, and where its value ends up.
#: Files (certFile and the like) are written by the test and filled in there.
TRANSLATIONS: tuple[tuple[str, dict[str, Any], Callable[[AppConfig], Any], Any], ...] = (
    (
        "connection.host",
        {"connection": {"host": "k8s.example:6443"}},
        kubernetes("connection.host"),
        "k8s.example:6443",
    ),
    ("connection.path", {"connection": {"path": "/k8s"}}, kubernetes("connection.path"), "/k8s"),
    (
        "connection.username",
        {"connection": {"username": "admin"}},
        kubernetes("connection.username"),
        "admin",
    ),
    (
        "connection.password",
        {"connection": {"password": "hunter2"}},
        kubernetes("connection.password"),
        "hunter2",
    ),
    (
        "connection.serverName",
        {"connection": {"serverName": "api.internal"}},
        kubernetes("connection.server_name"),
        "api.internal",
    ),
    (
        "connection.cert",
        {"connection": {"cert": CERT, "key": KEY}},
        kubernetes("connection.cert"),
        CERT,
    ),
    (
        "connection.key",
        {"connection": {"cert": CERT, "key": KEY}},
        kubernetes("connection.key"),
        KEY,
    ),
    ("connection.cacert", {"connection": {"cacert": CA}}, kubernetes("connection.cacert"), CA),
    (
        "connection.bearerToken",
        {"connection": {"bearerToken": "token-value"}},
        kubernetes("connection.bearer_token"),
        "token-value",
    ),
    ("connection.qps", {"connection": {"qps": 20}}, kubernetes("connection.qps"), 20.0),
    ("connection.burst", {"connection": {"burst": 40}}, kubernetes("connection.burst"), 40),
    (
        "connection.insecure",
        {"connection": {"insecure": True, "allowInsecure": True}},
        kubernetes("connection.insecure_skip_tls_verify"),
        True,
    ),
    ("connection.timeout", {"connection": {"timeout": "7s"}}, kubernetes("timeouts.http"), 7.0),
    ("connection.timeout 0s", {"connection": {"timeout": "0s"}}, kubernetes("timeouts.http"), 15.0),
    (
        "pod.namespace",
        {"pod": {"namespace": "users"}},
        kubernetes("pod.metadata"),
        {"namespace": "users", "generateName": "containerssh-"},
    ),
    (
        "pod.consoleContainerNumber",
        {"pod": {"consoleContainerNumber": 1, "podSpec": TWO_CONTAINERS}},
        kubernetes("pod.console_container_number"),
        1,
    ),
    ("pod.podSpec", {"pod": {"podSpec": TWO_CONTAINERS}}, kubernetes("pod.spec"), TWO_CONTAINERS),
    (
        "pod.podSpec in 0.3 spelling",
        {
            "pod": {
                "podSpec": {
                    **TWO_CONTAINERS,
                    "restartpolicy": "Never",
                    "deprecatedserviceaccount": "sa",
                }
            }
        },
        kubernetes("pod.spec"),
        {**TWO_CONTAINERS, "restartPolicy": "Never", "serviceAccount": "sa"},
    ),
    (
        "pod.subsystems",
        {"pod": {"subsystems": {"sftp": "/usr/libexec/sftp-server"}}},
        kubernetes("pod.subsystems"),
        {"sftp": "/usr/libexec/sftp-server"},
    ),
    (
        "pod.agentPath",
        {"pod": {"agentPath": "/opt/agent"}},
        kubernetes("pod.agent_path"),
        "/opt/agent",
    ),
    (
        "pod.disableAgent true",
        {"pod": {"disableAgent": True}},
        kubernetes("pod.disable_agent"),
        True,
    ),
    (
        "pod.disableAgent false",
        {"pod": {"disableAgent": False}},
        kubernetes("pod.disable_agent"),
        True,
    ),
    (
        "pod.shellCommand",
        {"pod": {"shellCommand": ["/bin/sh", "-l"]}},
        kubernetes("pod.shell_command"),
        ("/bin/sh", "-l"),
    ),
    (
        "pod.disableCommand",
        {"pod": {"disableCommand": True}},
        lambda config: (config.security.command.mode, config.security.kuberun_disable_command),
        ("disable", True),
    ),
)


class TranslationTests(SynchronousTestCase):
    """Every kuberun key lands where ContainerSSH 0.4's translation put it."""

    def test_each_key(self) -> None:
        """Each key's value appears in the translated configuration, table-driven."""
        for name, section, read, expected in TRANSLATIONS:
            config = parse_config(kuberun(**section))
            self.assertEqual(config.backend, "kubernetes", name)
            self.assertEqual(read(config), expected, name)

    def test_files(self) -> None:
        """certFile, keyFile, cacertFile and bearerTokenFile carry over (the files must exist)."""
        directory = os.path.abspath(self.mktemp())
        files = {
            key: write(directory, key, "x", mode=0o600)
            for key in ("certFile", "keyFile", "cacertFile", "bearerTokenFile")
        }
        connection = parse_config(kuberun(connection=files)).kubernetes.connection
        self.assertEqual(
            (
                connection.cert_file,
                connection.key_file,
                connection.cacert_file,
                connection.bearer_token_file,
            ),
            tuple(files.values()),
        )

    def test_timeout(self) -> None:
        """timeout sets every time limit but the HTTP one, which connection.timeout sets."""
        timeouts = parse_config(kuberun(timeout="2m")).kubernetes.timeouts
        self.assertEqual(
            (timeouts.pod_start, timeouts.pod_stop, timeouts.command_start),
            (120.0, 120.0, 120.0),
        )
        self.assertEqual((timeouts.signal, timeouts.window, timeouts.http), (120.0, 120.0, 15.0))

    def test_empty_namespace(self) -> None:
        """An empty namespace is the default one, as every empty string is its key's default."""
        config = parse_config(kuberun(pod={"namespace": ""}))
        self.assertEqual(config.kubernetes.pod.metadata["namespace"], "default")

    def test_defaults(self) -> None:
        """backend: kuberun alone is a session-mode pod in default, without the agent."""
        config = parse_config({"backend": "kuberun"})
        pod = config.kubernetes.pod
        self.assertEqual(config.backend, "kubernetes")
        self.assertEqual(pod.mode, "session")
        self.assertTrue(pod.disable_agent)
        self.assertEqual(pod.idle_command, ())
        self.assertEqual(pod.shell_command, ())
        self.assertEqual(pod.metadata["namespace"], "default")
        self.assertEqual(
            pod.spec["containers"][0]["image"], "containerssh/containerssh-guest-image"
        )
        self.assertEqual(config.kubernetes.timeouts.pod_start, 60.0)
        self.assertEqual(config.security.command.mode, "")
        self.assertFalse(config.security.kuberun_disable_command)
        self.assertFalse(config.kubernetes.connection.insecure_skip_tls_verify)

    def test_disable_command_overrides_command_mode(self) -> None:
        """disableCommand is stricter than a command allow list the file also has."""
        document = kuberun(pod={"disableCommand": True})
        document["security"] = {"command": {"mode": "filter", "allow": ["ls"]}}
        self.assertEqual(parse_config(document).security.command.mode, "disable")

    def test_json(self) -> None:
        """In JSON the section's keys match in any letter case, durations in nanoseconds."""
        text = json.dumps({"Backend": "kuberun", "KubeRun": {"Timeout": 30_000_000_000}})
        config = parse_config(json.loads(text), source_format="json")
        self.assertEqual(config.kubernetes.timeouts.pod_start, 30.0)
        [warning] = config.warnings
        self.assertEqual(warning.code, messages.KUBERUN_DEPRECATED)

    def test_dump(self) -> None:
        """dump-config writes the translation as a kubernetes section, no kuberun left."""
        dumped = dump_config(parse_config(kuberun(pod={"namespace": "users"})))
        document = yaml.safe_load(dumped)
        self.assertEqual(document["backend"], "kubernetes")
        self.assertNotIn("kuberun", document)
        self.assertEqual(document["kubernetes"]["pod"]["metadata"]["namespace"], "users")
        self.assertEqual(document["kubernetes"]["pod"]["mode"], "session")


class WarningTests(SynchronousTestCase):
    """KUBERUN_DEPRECATED once per load; KUBERUN_INSECURE only with the opt-in."""

    def codes(self, document: dict[str, Any]) -> list[str]:
        return [warning.code.code for warning in parse_config(document).warnings]

    def test_deprecated_once(self) -> None:
        """A translated section is one KUBERUN_DEPRECATED warning on the section."""
        [warning] = parse_config(kuberun(pod={"namespace": "users"})).warnings
        self.assertEqual(warning.code, messages.KUBERUN_DEPRECATED)
        self.assertEqual(warning.key_path, "kuberun")
        self.assertIn("kubernetes", warning.message)

    def test_ignored_section(self) -> None:
        """With another backend the section is read, not translated, and warned about."""
        config = parse_config({"backend": "docker", "kuberun": {"pod": {"disableCommand": True}}})
        self.assertEqual(config.backend, "docker")
        self.assertEqual(config.security.command.mode, "")
        [warning] = config.warnings
        self.assertEqual(warning.code, messages.KUBERUN_DEPRECATED)
        self.assertIn("ignored", warning.message)

    def test_ignored_section_still_strict(self) -> None:
        """A typo in an ignored section is still an error, naming the kuberun key."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"kuberun": {"pod": {"disableComand": True}}})
        self.assertEqual(raised.exception.key_path, "kuberun.pod.disableComand")

    def test_no_section_no_warning(self) -> None:
        """A configuration without kuberun warns about nothing."""
        self.assertEqual(self.codes({"backend": "docker"}), [])

    def test_insecure_refused(self) -> None:
        """insecure: true alone is refused at load, naming the key and the opt-in."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(kuberun(connection={"insecure": True}))
        self.assertEqual(raised.exception.key_path, "kuberun.connection.insecure")
        self.assertIn("allowInsecure", raised.exception.problem)

    def test_insecure_accepted_with_opt_in(self) -> None:
        """With allowInsecure it loads, with KUBERUN_INSECURE after the deprecation."""
        document = kuberun(connection={"insecure": True, "allowInsecure": True})
        self.assertEqual(self.codes(document), ["KUBERUN_DEPRECATED", "KUBERUN_INSECURE"])

    def test_opt_in_alone(self) -> None:
        """allowInsecure without insecure changes nothing: certificates are verified."""
        config = parse_config(kuberun(connection={"allowInsecure": True}))
        self.assertFalse(config.kubernetes.connection.insecure_skip_tls_verify)
        self.assertEqual([w.code for w in config.warnings], [messages.KUBERUN_DEPRECATED])


class RefusalTests(SynchronousTestCase):
    """What cannot be translated is a ConfigError naming the key the operator wrote."""

    def refused(self, document: dict[str, Any]) -> ConfigError:
        with self.assertRaises(ConfigError) as raised:
            parse_config(document)
        error: ConfigError = raised.exception
        return error

    def test_unknown_key(self) -> None:
        """kuberun is read as strictly as every other section."""
        error = self.refused(kuberun(conection={}))
        self.assertEqual(error.key_path, "kuberun.conection")

    def test_problems_name_kuberun_keys(self) -> None:
        """The kubernetes checks run on the translation, and name the kuberun keys."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"pod": {"podSpec": {"containers": []}}}, "kuberun.pod.podSpec.containers"),
            (
                {"pod": {"podSpec": {"containers": [{"name": "x"}]}}},
                "kuberun.pod.podSpec.containers[0].image",
            ),
            ({"pod": {"consoleContainerNumber": 3}}, "kuberun.pod.consoleContainerNumber"),
            (
                {
                    "pod": {
                        "podSpec": {
                            "containers": [{"name": "x", "image": "y"}],
                            "restartPolicy": "Always",
                        }
                    }
                },
                "kuberun.pod.podSpec.restartPolicy",
            ),
            ({"connection": {"cert": CERT}}, "kuberun.connection"),
            (
                {"connection": {"bearerTokenFile": "/nonexistent/token"}},
                "kuberun.connection.bearerTokenFile",
            ),
        ]
        for section, key_path in cases:
            self.assertEqual(self.refused(kuberun(**section)).key_path, key_path, section)

    def test_kubernetes_section_too(self) -> None:
        """backend: kuberun with a kubernetes section that sets something is refused."""
        document = kuberun()
        document["kubernetes"] = {"connection": {"host": "k8s.example"}}
        self.assertEqual(self.refused(document).key_path, "kubernetes")

    def test_default_kubernetes_section(self) -> None:
        """A kubernetes section of defaults only (as a 0.4 dump writes) is replaced quietly."""
        document = kuberun(pod={"namespace": "users"})
        document["kubernetes"] = {"connection": {"host": "kubernetes.default.svc"}, "pod": None}
        config = parse_config(document)
        self.assertEqual(config.kubernetes.pod.metadata["namespace"], "users")

    def test_configuration_server(self) -> None:
        """A configuration server's answer can send neither backend: kuberun nor the section."""
        base = parse_config({})
        for overlay, key_path in (
            ({"backend": "kuberun"}, "backend"),
            ({"kuberun": {}}, "kuberun"),
        ):
            with self.assertRaises(ConfigError) as raised:
                apply_override(base, overlay)
            self.assertEqual(raised.exception.key_path, key_path, overlay)
