"""Allow and deny lists for forwarding: the patterns, the policy's decisions
with them, and configuration errors that name the entry."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.forwardprotocol import ConnectionType
from conch_container.config import ConfigError, parse_config
from conch_container.config.forwardrules import parse_ports, parse_target
from tests.security.test_policy import TableTestCase, policy


class PatternTests(SynchronousTestCase):
    def test_targets(self) -> None:
        rows = [
            ("*.internal:5432", "db.internal", 5432, True),
            ("*.internal:5432", "DB.Internal", 5432, True),
            ("*.internal:5432", "db.internal", 5433, False),
            ("*.internal:5432", "internal", 5432, False),
            ("127.0.0.1:*", "127.0.0.1", 1, True),
            ("[::1]:8000-8999", "::1", 8080, True),
            ("[::1]:8000-8999", "[::1]", 8999, True),
            ("[::1]:8000-8999", "::1", 9000, False),
            ("*:22", "anything", 22, True),
        ]
        for pattern, host, port, expected in rows:
            with self.subTest(pattern=pattern, host=host, port=port):
                self.assertEqual(parse_target(pattern).matches(host, port), expected)

    def test_ports(self) -> None:
        self.assertIn(0, parse_ports("*"))
        self.assertIn(8080, parse_ports("8000-8999"))
        self.assertNotIn(0, parse_ports("1-65535"))
        self.assertIn(443, parse_ports(" 443 "))

    def test_refused_patterns(self) -> None:
        for bad in ("db.internal", ":80", "host:http", "host:90000", "host:20-10"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                parse_target(bad)
        for bad in ("http", "-1", "65536", "1-2-3"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                parse_ports(bad)

    def test_config_error_names_the_entry(self) -> None:
        with self.assertRaises(ConfigError) as raised:
            parse_config({"security": {"forwarding": {"allow": ["a:1", "db.internal"]}}})
        self.assertEqual(raised.exception.key_path, "security.forwarding.allow[1]")
        with self.assertRaises(ConfigError) as raised:
            parse_config({"security": {"forwarding": {"reverseDeny": ["http"]}}})
        self.assertEqual(raised.exception.key_path, "security.forwarding.reverseDeny[0]")


class ForwardingPolicyTests(TableTestCase):
    def test_local_forwarding(self) -> None:
        lists = {"allow": ["*.internal:5432"], "deny": ["metadata.*:*"]}
        rows = [
            ("enable", "db.internal", 5432, "allowed"),
            ("enable", "metadata.cloud", 80, "refused"),
            ("enable", "example.com", 443, "allowed"),
            ("filter", "db.internal", 5432, "allowed"),
            ("filter", "example.com", 443, "refused"),
            ("filter", "metadata.cloud", 80, "refused"),
            ("disable", "db.internal", 5432, "refused"),
        ]

        def decide(mode: str, host: str, port: int) -> object:
            rules = policy({"forwarding": {"forwardingMode": mode, **lists}})
            return rules.check_forwarding(host, port)

        self.check_table(rows, decide)

    def test_filter_without_list_refuses_as_containerssh_does(self) -> None:
        rules = policy({"forwarding": {"forwardingMode": "filter"}})
        self.assertIsNotNone(rules.check_forwarding("localhost", 80))

    def test_remote_forwarding(self) -> None:
        lists = {"reverseAllow": ["8000-8999"], "reverseDeny": ["22", "0"]}
        rows = [
            ("enable", 8080, "allowed"),
            ("enable", 22, "refused"),
            ("enable", 0, "refused"),
            ("filter", 8080, "allowed"),
            ("filter", 0, "refused"),
            ("filter", 9000, "refused"),
            ("disable", 8080, "refused"),
        ]

        def decide(mode: str, port: int) -> object:
            rules = policy({"forwarding": {"reverseForwardingMode": mode, **lists}})
            return rules.check_listen(ConnectionType.PORT_FORWARD, "localhost", port)

        self.check_table(rows, decide)
        refusal = policy({"forwarding": {"reverseForwardingMode": "filter"}}).check_listen(
            ConnectionType.PORT_FORWARD, "", 8080
        )
        assert refusal is not None
        self.assertIn("reverseAllow", refusal.explanation)
