"""Where a connection's container key comes from, and what of it may be shown.

The key lets connections of one user share a container
(:mod:`~conch_container.backend.shared`). It comes from the webhooks (an
authentication or configuration server metadata entry, or a variable of the
environment they give the connection) or, later, from a variable the client
sends (:mod:`~conch_container.backend.latekey`). A key may be a job token, so
logs show a digest of it, never the key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from conch_container import messages
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger

#: A key longer than this is no key (logged, and the connection gets its own container).
MAX_KEY_LENGTH = 256


def container_key(context: ConnectionContext) -> str | None:
    """The connection's container key from its webhooks, or None when it has none (or an
    unusable one)."""
    source = context.config.session.container_key
    metadata: Any = context.metadata
    if source.metadata:
        value = metadata.metadata.get(source.metadata)
        if value is not None and value.value:
            return usable_key(value.value, f"metadata {source.metadata}", context.log)
    if source.environment:
        value = metadata.environment.get(source.environment)
        if value is not None and value.value:
            return usable_key(
                value.value, f"environment variable {source.environment}", context.log
            )
    return None


def usable_key(key: str, where: str, log: CodeLogger) -> str | None:
    """``key`` if it can be one (from ``where``, for the log), else None (logged)."""
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        log.event(
            messages.CONTAINER_KEY_INVALID,
            "The container key from {source} is not usable ({length} characters, at most "
            "{limit} printable ones): this connection gets a container of its own",
            source=where,
            length=len(key),
            limit=MAX_KEY_LENGTH,
        )
        return None
    return key


def key_digest(key: str) -> str:
    """What logs show of a key: enough to match lines, not the key (it may be a job token)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]
