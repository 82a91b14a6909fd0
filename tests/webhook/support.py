"""Stand-ins shared by the webhook and auth tests."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver

from conch_container.config import AuthWebhookClientConfig
from conch_container.log import CodeLogger

#: The config package's webhook block: an HTTP client block plus ``auth_timeout``.
ClientConfig = AuthWebhookClientConfig


def capturing_logger() -> tuple[CodeLogger, list[dict[str, Any]]]:
    """A logger whose events land in the returned list."""
    events: list[dict[str, Any]] = []
    return CodeLogger("tests", observer=cast(ILogObserver, events.append)), events


def codes(events: list[dict[str, Any]]) -> list[str]:
    """The message codes of ``events``, in order."""
    return [e["code"] for e in events if "code" in e]


def with_code(events: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    """The events logged under ``code``."""
    return [e for e in events if e.get("code") == code]
