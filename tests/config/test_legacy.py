"""The ContainerSSH 0.4 auth shape is converted, with a warning for the caller to log."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import ConfigError, parse_config


class LegacyAuthTests(SynchronousTestCase):
    def test_url_converts_both_methods(self) -> None:
        """auth.url and the root client settings become password and publicKey webhooks."""
        config = parse_config(
            {
                "auth": {
                    "url": "http://auth.example:8080",
                    "timeout": "5s",
                    "authTimeout": "30s",
                    "password": True,
                    "pubkey": True,
                }
            }
        )
        for block in (config.auth.password, config.auth.public_key):
            self.assertEqual(block.method, "webhook")
            self.assertEqual(block.webhook.url, "http://auth.example:8080")
            self.assertEqual(block.webhook.timeout, 5.0)
            self.assertEqual(block.webhook.auth_timeout, 30.0)
        [warning] = config.warnings
        self.assertEqual(warning.code, messages.CONFIG_AUTH_URL_DEPRECATED)
        self.assertEqual(warning.key_path, "auth.url")
        self.assertIn("auth.password.webhook", warning.message)

    def test_url_alone(self) -> None:
        """Without the flags both methods are enabled, as in 0.4 where both defaulted to true."""
        config = parse_config({"auth": {"url": "http://a:1"}})
        self.assertEqual(config.auth.password.method, "webhook")
        self.assertEqual(config.auth.public_key.method, "webhook")
        self.assertEqual(config.auth.password.webhook.auth_timeout, 60.0)

    def test_flags_false(self) -> None:
        """password: false or pubkey: false keep that method off."""
        config = parse_config({"auth": {"url": "http://a:1", "pubkey": False}})
        self.assertEqual(config.auth.password.method, "webhook")
        self.assertEqual(config.auth.public_key.method, "")
        config = parse_config({"auth": {"url": "http://a:1", "password": False}})
        self.assertEqual(config.auth.password.method, "")
        self.assertEqual(config.auth.public_key.method, "webhook")

    def test_new_options_win(self) -> None:
        """With auth.password.webhook.url set, the legacy url is ignored with a warning."""
        config = parse_config(
            {
                "auth": {
                    "url": "http://old:1",
                    "password": {"method": "webhook", "webhook": {"url": "http://new:2"}},
                }
            }
        )
        self.assertEqual(config.auth.password.webhook.url, "http://new:2")
        self.assertEqual(config.auth.public_key.method, "")
        [warning] = config.warnings
        self.assertEqual(warning.code, messages.CONFIG_AUTH_URL_DEPRECATED)
        self.assertIn("ignored", warning.message)

    def test_public_key_method_already_set(self) -> None:
        """A publicKey method configured in the new shape is left alone."""
        config = parse_config(
            {
                "auth": {
                    "url": "http://old:1",
                    "publicKey": {"method": "static", "static": {"usersFile": "/u"}},
                }
            }
        )
        self.assertEqual(config.auth.password.method, "webhook")
        self.assertEqual(config.auth.public_key.method, "static")

    def test_settings_without_url(self) -> None:
        """Legacy settings without a url have no effect and are reported."""
        config = parse_config({"auth": {"authTimeout": "10s", "pubkey": True}})
        self.assertEqual(config.auth.password.method, "")
        [warning] = config.warnings
        self.assertEqual(warning.code, messages.CONFIG_DEPRECATED_KEY)
        self.assertEqual(warning.key_path, "auth.authTimeout")

    def test_legacy_value_errors(self) -> None:
        """Bad legacy values are reported at their own path."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"auth": {"url": "http://a:1", "timeout": "1ms"}})
        self.assertEqual(str(raised.exception), "auth.timeout: must be at least 100ms")
        with self.assertRaises(ConfigError) as raised:
            parse_config({"auth": {"url": "http://a:1", "pubkey": "sure"}})
        self.assertEqual(str(raised.exception), "auth.pubkey: must be true or false, not a string")

    def test_unknown_key_still_strict(self) -> None:
        """Keys that are neither current nor legacy are still errors."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"auth": {"url": "http://a:1", "pubkeys": True}})
        self.assertEqual(raised.exception.key_path, "auth.pubkeys")

    def test_json_legacy(self) -> None:
        """The legacy keys are matched case-insensitively in JSON."""
        config = parse_config(
            {"auth": {"URL": "http://a:1", "PubKey": False, "Timeout": 3000000000}},
            source_format="json",
        )
        self.assertEqual(config.auth.password.webhook.timeout, 3.0)
        self.assertEqual(config.auth.public_key.method, "")

    def test_warnings_not_part_of_equality(self) -> None:
        """Warnings do not make two otherwise equal configurations differ."""
        legacy = parse_config({"auth": {"url": "http://a:1"}})
        current = parse_config(
            {
                "auth": {
                    "password": {"method": "webhook", "webhook": {"url": "http://a:1"}},
                    "publicKey": {"method": "webhook", "webhook": {"url": "http://a:1"}},
                }
            }
        )
        self.assertEqual(legacy, current)
        self.assertEqual(current.warnings, ())
