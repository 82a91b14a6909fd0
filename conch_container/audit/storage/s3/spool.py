"""The spool directory (``audit.s3.local``): the sink that writes it, and what is left in it.

A stream is written to ``<local>/<connectionId>`` exactly as the ``file``
storage writes its files (:mod:`..localfile`), with the sidecar beside it
(:mod:`.sidecar`). The sink tells the uploader, from the recorder's thread,
only what it acts on: another full part is in the file, the stream's
metadata changed, the stream ended. A write that does not reach another part
boundary costs nothing but the write itself.

After a crash every non-empty file without a dot in its name is an aborted
stream (:func:`thd_scan`): names with a dot are sidecars, temporary files
and the ``.accesstest`` probe.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Protocol

import attrs
from zope.interface import implementer

from conch_container import messages
from conch_container.audit.storage import localfile
from conch_container.audit.storage.localfile import AppendFile
from conch_container.audit.storage.s3.sidecar import SIDECAR_SUFFIX, sidecar_path, write_sidecar
from conch_container.interfaces import AuditStreamInfo, IAuditSink
from conch_container.log import CodeLogger


class SpoolEvents(Protocol):
    """What a sink reports; called from the recorder's threads."""

    def grew(self, connection_id: str, size: int) -> None:
        """The file holds ``size`` bytes, past another part boundary."""

    def updated(self, info: AuditStreamInfo) -> None:
        """The stream's metadata changed."""

    def closed(self, connection_id: str, size: int) -> None:
        """The stream ended with ``size`` bytes."""


@implementer(IAuditSink)
class SpoolSink:
    """One connection's stream in the spool directory.

    :param part_size: the upload part size; the sink reports each time the
        file reaches another multiple of it.
    """

    def __init__(
        self,
        file: AppendFile,
        info: AuditStreamInfo,
        local: str,
        part_size: int,
        events: SpoolEvents,
        log: CodeLogger,
    ) -> None:
        self._file = file
        self._connection_id = info.connection_id
        self._local = local
        self._part_size = part_size
        self._next_boundary = part_size
        self._events = events
        self._log = log
        self._closed = False

    @property
    def path(self) -> str:
        return self._file.path

    def write(self, data: bytes) -> None:
        self._file.write(data)
        size = self._file.size
        if size >= self._next_boundary:
            self._next_boundary = (size // self._part_size + 1) * self._part_size
            self._events.grew(self._connection_id, size)

    def update(self, info: AuditStreamInfo) -> None:
        write_sidecar(self._local, info, self._log)
        self._events.updated(info)

    def close(self) -> None:
        """Close the file and hand the stream to the uploader; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        except OSError as error:
            # What the kernel has is uploaded all the same: it is the best there is.
            self._log.event(
                messages.AUDIT_S3_CLOSE_FAILED,
                "Closing the audit log {file} failed, its end may be missing: {reason}",
                file=self._file.path,
                reason=str(error),
            )
        self._events.closed(self._connection_id, self._file.size)


@attrs.frozen
class Spooled:
    """A stream an earlier run left in the spool directory."""

    connection_id: str
    size: int
    mtime: float


@attrs.frozen
class ScanResult:
    """What :func:`thd_scan` found.

    :ivar streams: aborted streams to upload.
    :ivar orphans: connection ids with a sidecar and no stream file.
    :ivar vanished: names listed that were gone when looked at.
    :ivar unreadable: ``(name, reason)`` for names that could not be looked at.
    """

    streams: list[Spooled]
    orphans: list[str]
    vanished: list[str]
    unreadable: list[tuple[str, str]]


def thd_scan(local: str, lock: threading.Lock, live: set[str]) -> ScanResult:
    """List the aborted streams in ``local``, leaving alone those in ``live``.

    The listing and the copy of ``live`` are made under ``lock``, which the
    storage holds while it adds a new stream to ``live`` and creates its
    file: so a file listed here is either live or from an earlier run.

    :raises OSError: when ``local`` cannot be listed.
    """
    with lock:
        names = os.listdir(local)
        busy = set(live)
    present = set(names)
    result = ScanResult([], [], [], [])
    for name in sorted(names):
        if name.endswith(SIDECAR_SUFFIX):
            owner = name[: -len(SIDECAR_SUFFIX)]
            if owner and "." not in owner and owner not in present and owner not in busy:
                result.orphans.append(owner)
            continue
        if "." in name or name in busy:
            continue
        try:
            info = os.stat(os.path.join(local, name))
        except FileNotFoundError:
            result.vanished.append(name)
            continue
        except OSError as error:
            result.unreadable.append((name, str(error)))
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            result.streams.append(Spooled(name, info.st_size, info.st_mtime))
    return result


def thd_remove_spooled(local: str, connection_id: str) -> list[tuple[str, str]]:
    """Delete an uploaded stream's file, then its sidecar; ``(path, reason)`` of each failure.

    The stream goes first: a crash in between leaves a sidecar alone, which
    the next start recognises as such, never a stream without its sidecar.
    """
    failures = []
    for path in (os.path.join(local, connection_id), sidecar_path(local, connection_id)):
        try:
            localfile.remove(path)
        except FileNotFoundError:
            continue
        except OSError as error:
            failures.append((path, str(error)))
    return failures


def thd_remove_orphan(local: str, connection_id: str) -> None:
    """Delete a sidecar whose stream is gone (nothing is left to upload with it)."""
    try:
        localfile.remove(sidecar_path(local, connection_id))
    except FileNotFoundError:
        pass
