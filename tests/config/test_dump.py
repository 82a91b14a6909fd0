"""The effective configuration written back as YAML loads to the same configuration."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig, dump_config, parse_config
from conch_container.config.loader import decode

from .material import ed25519_pem


def reload(config: AppConfig) -> AppConfig:
    return parse_config(decode(dump_config(config), "yaml"))


class DumpTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """The defaults round-trip."""
        self.assertEqual(reload(AppConfig()), AppConfig())

    def test_format(self) -> None:
        """Keys are ContainerSSH's, durations Go's, levels named, PEM in literal blocks."""
        key = ed25519_pem()
        config = parse_config(
            {"ssh": {"hostkeys": [key], "clientAliveInterval": "90s"}, "log": {"level": 7}}
        )
        text = dump_config(config)
        self.assertIn("serverVersion: SSH-2.0-ContainerSSH\n", text)
        self.assertIn("clientAliveInterval: 1m30s\n", text)
        self.assertIn("containerStart: 1m0s\n", text)
        self.assertIn("level: debug\n", text)
        self.assertIn("maxmind-geoip2-file: /var/lib/GeoIP/GeoIP2-Country.mmdb\n", text)
        self.assertIn("  hostkeys:\n    - |\n      -----BEGIN OPENSSH PRIVATE KEY-----\n", text)
        self.assertNotIn("warnings", text)

    def test_secrets_kept(self) -> None:
        """Secrets are written as they are (the operator's own file)."""
        config = parse_config(
            {"sshproxy": {"password": "hunter2"}, "audit": {"s3": {"secretKey": "s3cr3t"}}}
        )
        text = dump_config(config)
        self.assertIn("password: hunter2\n", text)
        self.assertIn("secretKey: s3cr3t\n", text)

    def test_tricky_strings(self) -> None:
        """Strings YAML would read as other types are quoted and come back as strings."""
        config = parse_config(
            {
                "ssh": {"banner": "yes"},
                "log": {"syslog": {"tag": "0o17"}},
                "security": {"forceCommand": "null"},
                "docker": {"execution": {"containername": "2024-01-01"}},
                "kubernetes": {"connection": {"username": "1:30"}},
            }
        )
        self.assertEqual(reload(config), config)

    def test_json_source(self) -> None:
        """A configuration read from JSON (Docker API names) dumps and reloads equal."""
        data = {
            "ssh": {"clientAliveInterval": 30_000_000_000, "banner": "Hi\nthere\n"},
            "docker": {
                "execution": {"container": {"Image": "busybox", "Env": ["A=1"]}},
                "timeouts": {"http": "20s"},
            },
        }
        config = parse_config(json.loads(json.dumps(data)), source_format="json")
        self.assertEqual(reload(config), config)

    @settings(max_examples=50, deadline=None)
    @given(
        interval=st.integers(min_value=1_000_000_000, max_value=2**52),
        timeout=st.integers(min_value=100_000_000, max_value=2**52),
        banner=st.text(),
        env=st.lists(st.text(min_size=1), max_size=3),
    )
    def test_round_trip(self, interval: int, timeout: int, banner: str, env: list[str]) -> None:
        """load(dump(config)) == config for assorted values."""
        config = parse_config(
            {
                "ssh": {"clientAliveInterval": interval, "banner": banner or "x"},
                "auth": {"password": {"webhook": {"timeout": timeout}}},
                "docker": {"execution": {"container": {"image": "i", "env": env}}},
            }
        )
        self.assertEqual(reload(config), config)
