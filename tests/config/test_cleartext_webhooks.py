"""Loading warns about webhooks that would receive passwords in clear across the network."""

from __future__ import annotations

import os
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config import load_config, parse_config
from conch_container.config.cleartext import (
    cleartext_webhook_warnings,
    crosses_network_in_clear,
    is_loopback_host,
)

from .material import write

CODE = messages.CONFIG_WEBHOOK_CLEARTEXT


def webhook(url: str) -> dict[str, Any]:
    return {"method": "webhook", "webhook": {"url": url}}


def warned_keys(data: dict[str, Any]) -> list[str]:
    """The key paths of the cleartext warnings for ``data`` (each under its code)."""
    warnings = cleartext_webhook_warnings(parse_config(data))
    return [w.key_path if w.code is CODE else f"wrong code {w.code.code}" for w in warnings]


class LoopbackTests(SynchronousTestCase):
    def test_loopback_names(self) -> None:
        """localhost, all of 127.0.0.0/8 and ::1 (also IPv4-mapped) are this machine."""
        for host in ("localhost", "LOCALHOST.", "auth.localhost", "127.0.0.1", "127.9.8.7"):
            self.assertTrue(is_loopback_host(host), host)
        for host in ("::1", "[::1]", "::ffff:127.0.0.1"):
            self.assertTrue(is_loopback_host(host), host)

    def test_other_hosts(self) -> None:
        """Private, public and unqualified names are other machines."""
        for host in ("10.0.0.1", "192.168.1.1", "128.0.0.1", "::2", "auth", "localhost.example"):
            self.assertFalse(is_loopback_host(host), host)

    def test_urls(self) -> None:
        """Only http:// to another host crosses the network in clear."""
        self.assertTrue(crosses_network_in_clear("http://auth.example:8080/"))
        self.assertTrue(crosses_network_in_clear("HTTP://user:pw@10.1.2.3/"))
        self.assertFalse(crosses_network_in_clear("https://auth.example/"))
        self.assertFalse(crosses_network_in_clear("http://127.0.0.1:8080/"))
        self.assertFalse(crosses_network_in_clear("http://[::1]:8080/"))
        self.assertFalse(crosses_network_in_clear("http://localhost/"))


class WarningTests(SynchronousTestCase):
    def test_password_webhook(self) -> None:
        """A plain-HTTP password webhook on another host is warned about, naming the key."""
        data = {"auth": {"password": webhook("http://auth.example:8080")}}
        [warning] = cleartext_webhook_warnings(parse_config(data))
        self.assertEqual(warning.code, CODE)
        self.assertEqual(warning.key_path, "auth.password.webhook.url")
        self.assertIn("auth.example:8080 is reached over plain http://", warning.message)
        self.assertIn("the passwords users type", warning.message)

    def test_every_webhook_in_use(self) -> None:
        """Password, public-key, authorization webhooks and the configuration server."""
        far = "http://10.0.0.5/"
        data = {
            "auth": {"password": webhook(far), "publicKey": webhook(far), "authz": webhook(far)},
            "configserver": {"url": far},
        }
        self.assertEqual(
            warned_keys(data),
            [
                "auth.password.webhook.url",
                "auth.publicKey.webhook.url",
                "auth.authz.webhook.url",
                "configserver.url",
            ],
        )

    def test_legacy_auth_url(self) -> None:
        """The ContainerSSH 0.4 auth.url is checked once converted."""
        self.assertIn(
            "auth.password.webhook.url", warned_keys({"auth": {"url": "http://auth.example/"}})
        )

    def test_quiet_cases(self) -> None:
        """HTTPS, loopback, and webhooks that are configured but not in use load quietly."""
        for data in (
            {"auth": {"password": webhook("https://auth.example/")}},
            {"auth": {"password": webhook("http://127.0.0.1:8080")}},
            {"auth": {"password": webhook("http://localhost:8080")}},
            {"auth": {"password": webhook("http://[::1]:8080")}},
            {
                "auth": {
                    "password": {"method": "", "webhook": {"url": "http://auth.example/"}},
                    "authz": {"method": "", "webhook": {"url": "http://auth.example/"}},
                }
            },
        ):
            self.assertEqual(warned_keys(data), [], data)

    def test_credentials_not_repeated(self) -> None:
        """Credentials in the URL never appear in the warning."""
        data = {"auth": {"password": webhook("http://user:hunter2@auth.example/")}}
        [warning] = cleartext_webhook_warnings(parse_config(data))
        self.assertNotIn("hunter2", warning.message)
        self.assertIn("auth.example is reached", warning.message)

    def test_at_load(self) -> None:
        """load_config returns the warning among the configuration's warnings."""
        data = {"auth": {"password": webhook("http://auth.example:8080")}}
        path = write(
            os.path.abspath(self.mktemp()), "config.yaml", yaml.safe_dump(data), mode=0o600
        )
        config = load_config(path)
        self.assertEqual(
            [(w.code, w.key_path) for w in config.warnings],
            [(CODE, "auth.password.webhook.url")],
        )
