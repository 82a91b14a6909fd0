"""The audit log the configuration asks for, or none."""

from __future__ import annotations

from typing import Any

from conch_container.audit.codec import codec_for
from conch_container.audit.service import AuditLog
from conch_container.audit.storage import build_storage
from conch_container.config import AuditConfig
from conch_container.log.logger import CodeLogger


def records(audit: AuditConfig) -> bool:
    """Whether ``audit`` records anything: on, with a format and a storage."""
    return audit.enable and audit.format != "none" and audit.storage != "none"


def build_audit_log(
    reactor: Any, log: CodeLogger, audit: AuditConfig, *, deadline: float
) -> AuditLog | None:
    """The :class:`AuditLog` for the ``audit`` section, or None when it records nothing.

    :param deadline: seconds a shutdown waits for open streams to be written.
    """
    if not records(audit):
        return None
    storage = build_storage(reactor, log, audit, shutdown_deadline=deadline)
    assert storage is not None
    return AuditLog(
        reactor, log, codec_for(audit.format), storage, audit.intercept, deadline=deadline
    )
