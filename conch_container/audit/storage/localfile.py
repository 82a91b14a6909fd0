"""Local audit files: created exclusively, private, and written straight to the OS.

Both storages keep a connection's stream in a local file named by its
connection id: the ``file`` storage for good, the ``s3`` storage as a spool
until the upload is done. The file is created with ``O_EXCL`` (a second
stream never appends to an existing record) and mode 0600 (a record holds
passwords and terminal contents), and written with :func:`os.write` alone:
no Python-level buffer sits between :meth:`AppendFile.write` returning and
the kernel having the bytes, so a gateway killed with ``SIGKILL`` leaves
every byte it acknowledged.

The names :data:`close_fd` and :data:`remove` are what this package calls to
close and delete files; the tests replace them to make the operating system
fail where it cannot be made to for real (a close that fails on NFS).
"""

from __future__ import annotations

import os

#: Closes a file descriptor (:func:`os.close`).
close_fd = os.close
#: Deletes a file (:func:`os.remove`).
remove = os.remove

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
FILE_MODE = 0o600


def check_name(connection_id: str) -> None:
    """Refuse a connection id that cannot be a plain file name of a stream.

    Stream files are named by the id alone, and the ``s3`` storage tells an
    aborted stream from its other files (``<id>.metadata.json``) by the
    absence of a dot; so the id may hold neither a path separator nor a dot.

    :raises ValueError: for an empty id, or one with ``/``, ``.`` or NUL.
    """
    if not connection_id or any(c in connection_id for c in "/.\0"):
        raise ValueError(f"not usable as an audit file name: {connection_id!r}")


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many calls the kernel needs.

    A regular file takes everything at once, except when the disk fills up
    part-way; the loop then writes the rest, which fails with the real error
    (``ENOSPC``) instead of silently dropping the tail.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class AppendFile:
    """One stream's local file, open for appending.

    :ivar path: where it is.
    :ivar size: how many bytes were written to it.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.size = 0
        self._fd: int | None = fd

    @classmethod
    def create(cls, path: str) -> AppendFile:
        """Create ``path``, which must not exist yet, with mode 0600.

        :raises OSError: ``FileExistsError`` when it exists, or whatever the
            directory refuses.
        """
        return cls(path, os.open(path, _CREATE_FLAGS, FILE_MODE))

    def write(self, data: bytes) -> None:
        """Append ``data``; when this returns, the kernel has it.

        :raises ValueError: after :meth:`close`.
        """
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        try:
            write_all(self._fd, data)
        except OSError:
            # Part of ``data`` may be in (the disk filled up): ``size`` stays
            # what the file holds, which later writes append to.
            self.size = os.fstat(self._fd).st_size
            raise
        self.size += len(data)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Close the file; a second call does nothing.

        :raises OSError: when the close fails (on NFS, the last written data may
            be lost then). The descriptor is released either way.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            close_fd(fd)
