"""Where audit streams go (``audit.storage``): ``file`` or ``s3``.

- :func:`build_storage` makes the configured storage. The ``s3`` one is also
  a service, which must stop after the last connection closed (the audit
  log service makes it its child).
- :func:`check_directories` checks, before the gateway starts, that the
  directory the storage writes to exists and takes files, as ContainerSSH
  does: by creating and removing ``.accesstest`` in it.

:mod:`.file` and :mod:`.s3` hold the storages; :mod:`.localfile` the way
both write local files.
"""

from __future__ import annotations

import os
from typing import Any

from conch_container.audit.storage.file import FileStorage
from conch_container.config.audit import AuditConfig
from conch_container.config.errors import ConfigError
from conch_container.interfaces import IAuditStorage
from conch_container.log import CodeLogger

#: The file a directory check writes (names with a dot are never streams).
ACCESS_TEST_FILE = ".accesstest"
#: ContainerSSH's shutdown grace period, in seconds.
SHUTDOWN_DEADLINE = 20.0


def build_storage(
    reactor: Any,
    log: CodeLogger,
    audit: AuditConfig,
    *,
    shutdown_deadline: float = SHUTDOWN_DEADLINE,
) -> IAuditStorage | None:
    """The storage ``audit.storage`` names; None for ``none``.

    :param shutdown_deadline: how long the ``s3`` storage's ``stopService``
        lets unfinished uploads go on (what is not done stays spooled for the
        next start); the gateway passes its own shutdown deadline.
    :return: a :class:`~.file.FileStorage`, or an
        :class:`~.s3.S3Storage`, which also provides
        :class:`~twisted.application.service.IService`.
    """
    if audit.storage == "file":
        return FileStorage(audit.file.directory)
    if audit.storage == "s3":
        # botocore is imported only when S3 is used: it takes a while.
        from conch_container.audit.storage.s3 import S3Storage

        return S3Storage(reactor, log, audit.s3, deadline=shutdown_deadline)
    return None


def check_directories(audit: AuditConfig) -> None:
    """Check the directory an enabled audit storage writes to.

    ``audit.file.directory`` for ``file``, ``audit.s3.local`` for ``s3``: it
    must exist and take a new file. Blocking; call it at start-up.

    :raises ConfigError: naming the key, when it does not.
    """
    if not audit.enable:
        return
    if audit.storage == "file":
        check_writable(audit.file.directory, "audit.file.directory")
    elif audit.storage == "s3":
        check_writable(audit.s3.local, "audit.s3.local")


def check_writable(directory: str, key_path: str) -> None:
    """``directory`` must exist and take a new file (tried with :data:`ACCESS_TEST_FILE`).

    :raises ConfigError: for ``key_path``, when it does not.
    """
    if not directory:
        raise ConfigError(key_path, "must not be empty")
    if not os.path.isdir(directory):
        raise ConfigError(key_path, f"directory {directory} does not exist")
    probe = os.path.join(directory, ACCESS_TEST_FILE)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise ConfigError(
            key_path, f"directory {directory} is not writable ({error.strerror or error})"
        ) from None
