"""Per-connection overlays (a configuration server's answer) merge as ContainerSSH merges."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import (
    AppConfig,
    ConfigError,
    apply_override,
    merge_config,
    parse_config,
)

from .material import ed25519_pem


class MergeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = parse_config(
            {
                "docker": {
                    "execution": {
                        "container": {"image": "base", "env": ["A=1"], "labels": {"x": "1"}},
                        "subsystems": {"sftp": "/sftp"},
                    }
                },
                "security": {"env": {"mode": "filter", "allow": ["LANG"]}},
            }
        )

    def test_non_zero_values_override(self) -> None:
        """Given values replace the base; everything else stays."""
        merged = merge_config(
            self.base,
            {"backend": "docker", "docker": {"execution": {"container": {"image": "user"}}}},
        )
        self.assertEqual(merged.docker.execution.container["Image"], "user")
        self.assertEqual(merged.docker.execution.container["Env"], ["A=1"])
        self.assertEqual(merged.security, self.base.security)

    def test_zero_values_do_not_override(self) -> None:
        """false, 0, "" and empty lists leave the base value (ContainerSSH's merge)."""
        base = parse_config({"docker": {"execution": {"disableAgent": True}}})
        merged = merge_config(
            base,
            {
                "docker": {"execution": {"disableAgent": False, "idleCommand": []}},
                "security": {"maxSessions": 0, "forceCommand": ""},
            },
        )
        self.assertTrue(merged.docker.execution.disable_agent)
        self.assertEqual(merged.docker.execution.idle_command, base.docker.execution.idle_command)
        self.assertEqual(merged.security.max_sessions, -1)

    def test_maps_merge_per_key(self) -> None:
        """Maps merge key by key, also inside Docker structures (case-insensitively)."""
        merged = merge_config(
            self.base,
            {
                "Docker": {
                    "Execution": {
                        "Container": {"Labels": {"y": "2"}},
                        "Subsystems": {"scp": "/scp"},
                    }
                }
            },
        )
        self.assertEqual(merged.docker.execution.container["Labels"], {"x": "1", "y": "2"})
        self.assertEqual(merged.docker.execution.subsystems, {"sftp": "/sftp", "scp": "/scp"})

    def test_lists_replace(self) -> None:
        """Non-empty lists replace the base list."""
        merged = merge_config(self.base, {"security": {"env": {"allow": ["TERM"]}}})
        self.assertEqual(merged.security.env.allow, ("TERM",))
        self.assertEqual(merged.security.env.mode, "filter")

    def test_json_rules(self) -> None:
        """Overlays are JSON by default: durations are integer nanoseconds."""
        merged = merge_config(
            AppConfig(), {"docker": {"timeouts": {"commandStart": 5_000_000_000}}}
        )
        self.assertEqual(merged.docker.timeouts.command_start, 5.0)
        with self.assertRaises(ConfigError) as raised:
            merge_config(AppConfig(), {"kubernetes": {"timeouts": {"podStart": "5s"}}})
        self.assertEqual(raised.exception.key_path, "kubernetes.timeouts.podStart")

    def test_strict(self) -> None:
        """Unknown keys in an overlay are errors too."""
        with self.assertRaises(ConfigError) as raised:
            merge_config(AppConfig(), {"docker": {"execution": {"imag": "x"}}})
        self.assertEqual(raised.exception.key_path, "docker.execution.imag")

    def test_empty(self) -> None:
        """No overlay leaves the configuration as it is."""
        self.assertEqual(merge_config(self.base, None), self.base)
        self.assertEqual(merge_config(self.base, {}), self.base)


def execution(**settings: Any) -> dict[str, Any]:
    """An override of ``docker.execution``."""
    return {"docker": {"execution": settings}}


class ApplyOverrideTests(SynchronousTestCase):
    """``apply_override``: one connection's configuration, merged and checked as a file is."""

    def setUp(self) -> None:
        # Checked as load_config checks a file: with its warning about the
        # webhook reached over plain HTTP.
        self.base = self.checked(
            {
                "ssh": {"hostkeys": [ed25519_pem()]},
                "auth": {"password": {"method": "webhook", "webhook": {"url": "http://a:1"}}},
                "docker": {
                    "execution": {
                        "container": {"image": "base", "labels": {"team": "a"}},
                        "host": {"resources": {"memory": 1024}},
                    }
                },
            }
        )

    def checked(self, data: dict[str, Any]) -> AppConfig:
        config = apply_override(parse_config(data), None)
        self.assertEqual([w.code for w in config.warnings], [messages.CONFIG_WEBHOOK_CLEARTEXT])
        return config

    def assertRefused(self, override: Any, key_path: str) -> ConfigError:
        with self.assertRaises(ConfigError) as raised:
            apply_override(self.base, override)
        self.assertEqual(raised.exception.key_path, key_path)
        return raised.exception

    def test_engine_structures_merged(self) -> None:
        """The override's Engine API names merge with the file's spellings, checked, converted."""
        merged = apply_override(
            self.base,
            execution(
                container={"Image": "user", "Labels": {"user": "b"}, "WorkingDir": "/w"},
                host={"Memory": 2048, "ReadonlyRootfs": True},
            ),
        )
        self.assertEqual(
            merged.docker.execution.container,
            {"Image": "user", "Labels": {"team": "a", "user": "b"}, "WorkingDir": "/w"},
        )
        self.assertEqual(merged.docker.execution.host, {"Memory": 2048, "ReadonlyRootfs": True})
        self.assertEqual(self.base.docker.execution.container["Image"], "base")

    def test_wrong_type_in_override(self) -> None:
        """A wrong type anywhere in the override is a ConfigError naming its key path."""
        self.assertRefused(
            execution(container={"Healthcheck": {"Retries": "x"}}),
            "docker.execution.container.Healthcheck.Retries",
        )
        self.assertRefused(
            {
                "kubernetes": {
                    "pod": {"spec": {"containers": [{"ports": [{"containerPort": "x"}]}]}}
                }
            },
            "kubernetes.pod.spec.containers[0].ports[0].containerPort",
        )

    def test_whole_configuration_validated(self) -> None:
        """What is wrong only together with the file's settings is refused too."""
        error = self.assertRefused(
            execution(mode="session", host={"RestartPolicy": {"Name": "always"}}),
            "docker.execution.host.restartpolicy",
        )
        self.assertIn("session mode", error.problem)

    def test_unsupported_feature_refused(self) -> None:
        """An override cannot switch on what this version cannot run."""
        self.assertRefused({"backend": "sshproxy"}, "backend")

    def test_warnings_of_the_override_added(self) -> None:
        """Its own warnings (an unknown Engine API key) come after the file's, each once."""
        merged = apply_override(self.base, execution(container={"Futurefield": 1}))
        self.assertEqual(merged.warnings[:-1], self.base.warnings)
        self.assertEqual(
            (merged.warnings[-1].code, merged.warnings[-1].key_path),
            (messages.CONFIG_DOCKER_UNKNOWN_KEY, "docker.execution.container.Futurefield"),
        )
        self.assertEqual(apply_override(merged, None).warnings, merged.warnings)

    def test_empty_override(self) -> None:
        """No override: the configuration as it was."""
        self.assertEqual(apply_override(self.base, None), self.base)
        self.assertEqual(apply_override(self.base, {}), self.base)

    def test_not_a_mapping(self) -> None:
        """An override that is not a mapping of sections is refused."""
        self.assertRefused(["docker"], "")
