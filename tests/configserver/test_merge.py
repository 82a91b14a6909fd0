"""A configuration server's ``config`` over the static one: explicit values, fixed keys."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.codes import Level
from conch_container.config import ConfigError, merge_config, parse_config
from conch_container.config.perconnection import connection_config


def _base() -> Any:
    return parse_config(
        {
            "docker": {
                "execution": {
                    "container": {"image": "base", "env": ["A=1"], "labels": {"x": "1"}},
                    "disableAgent": True,
                    "idleCommand": ["/bin/sleep", "1000"],
                }
            },
            "security": {"maxSessions": 5, "forceCommand": "/bin/menu"},
            "log": {"level": "info"},
            "auth": {
                "password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}
            },
        }
    )


class ExplicitValuesTests(SynchronousTestCase):
    """Unlike ContainerSSH's merge, every value the server gives takes effect."""

    def test_false_zero_and_empty_take_effect(self) -> None:
        """false, 0, "" and an empty list replace the static values."""
        merged = merge_config(
            _base(),
            {
                "docker": {"execution": {"disableAgent": False, "idleCommand": []}},
                "security": {"forceCommand": "", "maxSessions": 0},
            },
            explicit=True,
        )
        self.assertFalse(merged.docker.execution.disable_agent)
        self.assertEqual(merged.docker.execution.idle_command, ())
        self.assertEqual(merged.security.force_command, "")
        self.assertEqual(merged.security.max_sessions, 0)

    def test_explicit_values_are_validated(self) -> None:
        """An explicit value that leaves the whole invalid is refused, naming its key."""
        with self.assertRaises(ConfigError) as raised:
            connection_config(_base(), {"docker": {"execution": {"idleCommand": []}}})
        self.assertEqual(raised.exception.key_path, "docker.execution.idleCommand")
        merged = connection_config(
            _base(),
            {"docker": {"execution": {"disableAgent": False}}, "security": {"forceCommand": ""}},
        )
        self.assertFalse(merged.docker.execution.disable_agent)
        self.assertEqual(merged.security.force_command, "")

    def test_containerssh_rule_still_available(self) -> None:
        """merge_config without explicit keeps ContainerSSH's non-zero rule."""
        merged = merge_config(
            _base(),
            {
                "docker": {"execution": {"disableAgent": False, "idleCommand": []}},
                "security": {"forceCommand": "", "maxSessions": 0},
            },
        )
        self.assertTrue(merged.docker.execution.disable_agent)
        self.assertEqual(merged.docker.execution.idle_command, ("/bin/sleep", "1000"))
        self.assertEqual(merged.security.force_command, "/bin/menu")
        self.assertEqual(merged.security.max_sessions, 5)

    def test_left_out_and_null_keep_the_base(self) -> None:
        """Keys the server leaves out, or sends as null, keep the static value."""
        merged = connection_config(
            _base(), {"security": {"forceCommand": None}, "docker": {"execution": {}}}
        )
        self.assertEqual(merged.security.force_command, "/bin/menu")
        self.assertTrue(merged.docker.execution.disable_agent)

    def test_engine_structures_merge_explicitly(self) -> None:
        """Inside Docker structures maps merge per key, and explicit empties replace."""
        merged = connection_config(
            _base(),
            {
                "docker": {
                    "execution": {"container": {"Image": "user", "Env": [], "Labels": {"y": "2"}}}
                }
            },
        )
        container = merged.docker.execution.container
        self.assertEqual(container["Image"], "user")
        self.assertEqual(container["Env"], [])
        self.assertEqual(container["Labels"], {"x": "1", "y": "2"})

    def test_json_rules(self) -> None:
        """Durations are integer nanoseconds and Docker structures take Engine API names."""
        merged = connection_config(
            _base(),
            {
                "docker": {
                    "timeouts": {"containerStart": 7_000_000_000},
                    "execution": {
                        "container": {"workingdir": "/w", "hostname": "h"},
                        "host": {"readonlyrootfs": True},
                    },
                }
            },
        )
        self.assertEqual(merged.docker.timeouts.container_start, 7.0)
        self.assertEqual(merged.docker.execution.container["WorkingDir"], "/w")
        self.assertEqual(merged.docker.execution.container["Hostname"], "h")
        self.assertEqual(merged.docker.execution.host["ReadonlyRootfs"], True)

    def test_log_level_per_connection(self) -> None:
        """log.level may change for one connection."""
        merged = connection_config(_base(), {"log": {"level": "debug"}})
        self.assertEqual(merged.log.level, Level.DEBUG)


class RefusalTests(SynchronousTestCase):
    """What the gateway cannot vary per connection, or cannot run, is refused by key."""

    def assertRefused(self, override: Any, key_path: str) -> ConfigError:
        with self.assertRaises(ConfigError) as raised:
            connection_config(_base(), override)
        self.assertEqual(raised.exception.key_path, key_path)
        return raised.exception

    def test_fixed_keys_refused(self) -> None:
        """Keys fixed for the process are refused, naming the key path."""
        self.assertRefused({"ssh": {"listen": "0.0.0.0:2223"}}, "ssh.listen")
        self.assertRefused({"audit": {"enable": True}}, "audit.enable")
        self.assertRefused({"metrics": {"enable": True}}, "metrics.enable")
        self.assertRefused({"log": {"format": "text"}}, "log.format")
        self.assertRefused({"auth": {"password": {"method": "static"}}}, "auth.password.method")

    def test_fixed_keys_repeated_unchanged(self) -> None:
        """A server that repeats a fixed value unchanged is not refused."""
        base = _base()
        merged = connection_config(base, {"log": {"format": base.log.format}, "backend": "docker"})
        self.assertEqual(merged.log, base.log)

    def test_backend_switch_allowed(self) -> None:
        """A connection may use another backend than the file's (the gateway routes it)."""
        merged = connection_config(_base(), {"backend": "kubernetes"})
        self.assertEqual(merged.backend, "kubernetes")
        self.assertEqual(_base().backend, "docker")

    def test_backend_switch_to_unsupported_refused(self) -> None:
        """A backend this version cannot run is refused, naming the key."""
        self.assertRefused({"backend": "sshproxy"}, "backend")

    def test_invalid_value_names_its_key(self) -> None:
        """A value of the wrong type is refused with its key path."""
        self.assertRefused({"security": {"maxSessions": "many"}}, "security.maxSessions")
        self.assertRefused({"docker": {"nosuchkey": 1}}, "docker.nosuchkey")

    def test_merged_whole_validated(self) -> None:
        """An empty image is valid JSON but not a configuration the gateway can run."""
        self.assertRefused(
            {"docker": {"execution": {"container": {"image": ""}}}},
            "docker.execution.container.image",
        )
