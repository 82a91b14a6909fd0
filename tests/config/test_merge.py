"""Per-connection overlays (a configuration server's answer) merge as ContainerSSH merges."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig, ConfigError, merge_config, parse_config


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
        self.assertEqual(merged.docker.execution.container["image"], "user")
        self.assertEqual(merged.docker.execution.container["env"], ["A=1"])
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
        self.assertEqual(merged.docker.execution.container["labels"], {"x": "1", "y": "2"})
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
