"""Structured logging with ContainerSSH message codes.

Library code logs through :class:`~conch_container.log.logger.CodeLogger`;
the observers in :mod:`conch_container.log.observers` turn the events into
``ljson`` or ``text`` lines on stdout, a file or syslog.
"""

from conch_container.codes import Level, MessageCode
from conch_container.log.logger import CodeLogger

__all__ = ["CodeLogger", "Level", "MessageCode"]
