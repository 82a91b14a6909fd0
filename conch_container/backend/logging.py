"""The logger a backend uses for one connection."""

from __future__ import annotations

from typing import Any

from conch_container.log.logger import CodeLogger


def connection_logger(log: Any, namespace: str, **fields: Any) -> CodeLogger:
    """The connection's logger with ``fields`` bound (a new one in ``namespace`` if it is none).

    The gateway always passes a :class:`CodeLogger`; a context built some
    other way (a test's, a third-party caller's) may not.
    """
    if isinstance(log, CodeLogger):
        return log.bind(**fields)
    return CodeLogger(namespace, fields)
