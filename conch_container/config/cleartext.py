"""Warnings about webhooks reached over plain HTTP across the network.

The password webhook receives every password users type, and every webhook
receives user names and connection details. ``http://`` is fine to a server on
the same machine; to any other host these would cross the network
unencrypted, so loading warns (``CONFIG_WEBHOOK_CLEARTEXT``). Only webhooks
the configuration actually uses are checked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

from conch_container import messages
from conch_container.config.app import AppConfig
from conch_container.config.errors import ConfigWarning


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761: the localhost names always resolve to loopback
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def crosses_network_in_clear(url: str) -> bool:
    """Whether ``url`` is ``http://`` to a host other than this machine."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False  # validation reports a malformed URL
    if parts.scheme.lower() != "http" or not parts.hostname:
        return False
    return not is_loopback_host(parts.hostname)


_DETAILS = "user names and connection details"


def _webhooks_in_use(config: AppConfig) -> Iterator[tuple[str, str, str]]:
    """(key path, URL, what the gateway sends there) for every webhook switched on."""
    auth = config.auth
    for key, block, sent in (
        ("auth.password", auth.password, "the passwords users type"),
        ("auth.publicKey", auth.public_key, _DETAILS),
        ("auth.authz", auth.authz, _DETAILS),
    ):
        if block.method == "webhook":
            yield f"{key}.webhook.url", block.webhook.url, sent
    if config.configserver.url:
        yield "configserver.url", config.configserver.url, _DETAILS


def cleartext_webhook_warnings(config: AppConfig) -> tuple[ConfigWarning, ...]:
    """A ``CONFIG_WEBHOOK_CLEARTEXT`` warning per webhook in use over plain HTTP to another host."""
    return tuple(
        ConfigWarning(
            messages.CONFIG_WEBHOOK_CLEARTEXT,
            key_path,
            f"{_host(url)} is reached over plain http://, so {sent} would cross the network "
            "unencrypted; use https://",
        )
        for key_path, url, sent in _webhooks_in_use(config)
        if crosses_network_in_clear(url)
    )


def _host(url: str) -> str:
    """The URL's host and port, without any credentials it carries."""
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2]
