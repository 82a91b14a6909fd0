"""The ``file`` storage: one file per connection in ``audit.file.directory``.

The file is named by the connection id, without an extension, for every
format (as ContainerSSH names it). Nothing ships it anywhere: it is the
record. See :mod:`.localfile` for how it is created and written.
"""

from __future__ import annotations

import os

from zope.interface import implementer

from conch_container.audit.storage.localfile import AppendFile, check_name
from conch_container.interfaces import AuditStreamInfo, IAuditSink, IAuditStorage


@implementer(IAuditSink)
class FileSink:
    """One connection's record in the ``file`` storage."""

    def __init__(self, file: AppendFile) -> None:
        self._file = file

    @property
    def path(self) -> str:
        return self._file.path

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def update(self, info: AuditStreamInfo) -> None:
        """Nothing to do: a plain file carries no metadata besides its name."""

    def close(self) -> None:
        self._file.close()


@implementer(IAuditStorage)
class FileStorage:
    """Audit records as files in ``directory``.

    :param directory: an existing, writable directory (checked at start-up by
        :func:`conch_container.audit.storage.check_directories`).
    """

    name = "file"

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def open(self, info: AuditStreamInfo) -> FileSink:
        """Create the connection's file (blocking; on the recorder's pool).

        :raises ValueError: for a connection id that is no plain file name.
        :raises OSError: when the file exists already or cannot be created.
        """
        check_name(info.connection_id)
        return FileSink(AppendFile.create(os.path.join(self.directory, info.connection_id)))
