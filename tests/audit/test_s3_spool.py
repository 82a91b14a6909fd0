"""The spool sink and the sidecar, on their own: what they write, report and log.

The operating system is made to fail where it can be for real (a directory
in the way of a file); a close that fails, which only NFS does, is injected
by replacing :data:`conch_container.audit.storage.localfile.close_fd`.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.audit.storage import localfile
from conch_container.audit.storage.localfile import AppendFile
from conch_container.audit.storage.s3.sidecar import (
    decode_sidecar,
    encode_sidecar,
    header_value,
    object_metadata,
    read_sidecar,
    write_sidecar,
)
from conch_container.audit.storage.s3.spool import SpoolSink, thd_remove_spooled, thd_scan
from conch_container.interfaces import AuditStreamInfo, IAuditSink
from conch_container.log import CodeLogger

INFO = AuditStreamInfo("cafe01", 1_700_000_000, "192.0.2.9", country="FR")


class RecordedEvents:
    """A :class:`~conch_container.audit.storage.s3.spool.SpoolEvents` that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def grew(self, connection_id: str, size: int) -> None:
        self.calls.append(("grew", size))

    def updated(self, info: AuditStreamInfo) -> None:
        self.calls.append(("updated", info))

    def closed(self, connection_id: str, size: int) -> None:
        self.calls.append(("closed", size))


def failing_close(bad: set[int]) -> Any:
    """A replacement for :func:`os.close` that fails (as NFS may) for the descriptors in ``bad``."""
    real = os.close

    def close(fd: int) -> None:
        real(fd)  # released all the same, as the kernel does
        if fd in bad:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    return close


class SpoolTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.local = os.path.abspath(self.mktemp())
        os.makedirs(self.local)
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests.audit", observer=self.events)
        self.reported = RecordedEvents()

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]

    def sink(self, part_size: int = 10) -> SpoolSink:
        file = AppendFile.create(os.path.join(self.local, INFO.connection_id))
        return SpoolSink(file, INFO, self.local, part_size, self.reported, self.log)


class SpoolSinkTests(SpoolTestCase):
    def test_interface(self) -> None:
        """A spool sink is an IAuditSink."""
        self.assertTrue(verifyObject(IAuditSink, self.sink()))

    def test_reports_part_boundaries_only(self) -> None:
        """Writes are reported only when the file reaches another multiple of the part size."""
        sink = self.sink(part_size=10)
        for chunk in (b"1234", b"56789", b"0", b"abc", b"defghijklmnopqrstu", b"v"):
            sink.write(chunk)
        self.assertEqual(self.reported.calls, [("grew", 10), ("grew", 31)])
        sink.close()
        self.assertEqual(self.reported.calls[-1], ("closed", 32))
        with open(sink.path, "rb") as file:
            self.assertEqual(file.read(), b"1234567890abcdefghijklmnopqrstuv")

    def test_close_once(self) -> None:
        """A second close neither closes again nor reports again."""
        sink = self.sink()
        sink.close()
        sink.close()
        self.assertEqual(self.reported.calls, [("closed", 0)])

    def test_close_failed(self) -> None:
        """A failing close logs AUDIT_S3_CLOSE_FAILED and still hands the stream over."""
        sink = self.sink()
        sink.write(b"data")
        bad = {sink._file._fd}  # type: ignore[attr-defined]
        self.patch(localfile, "close_fd", failing_close(bad))  # type: ignore[arg-type]
        sink.close()
        self.assertEqual(self.codes(), [messages.AUDIT_S3_CLOSE_FAILED.code])
        self.assertEqual(self.reported.calls, [("closed", 4)])

    def test_private_and_exclusive(self) -> None:
        """The spool file is mode 0600, and an existing one is never appended to."""
        sink = self.sink()
        self.assertEqual(stat.S_IMODE(os.stat(sink.path).st_mode), 0o600)
        with self.assertRaises(FileExistsError):
            self.sink()

    def test_update_rewrites_sidecar(self) -> None:
        """update replaces the sidecar and reports the new information."""
        sink = self.sink()
        later = AuditStreamInfo("cafe01", 1_700_000_000, "192.0.2.9", "FR", True, "dave")
        sink.update(later)
        self.assertEqual(read_sidecar(self.local, "cafe01"), later)
        self.assertEqual(self.reported.calls, [("updated", later)])


class SidecarTests(SpoolTestCase):
    def test_format(self) -> None:
        """The sidecar is ContainerSSH's JSON, mode 0600, with no temporary file left."""
        self.assertTrue(write_sidecar(self.local, INFO, self.log))
        path = os.path.join(self.local, "cafe01.metadata.json")
        with open(path, "rb") as file:
            self.assertEqual(
                json.loads(file.read()),
                {
                    "startTime": 1_700_000_000,
                    "remoteAddr": "192.0.2.9",
                    "authenticated": False,
                    "username": "",
                    "country": "FR",
                },
            )
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(self.local)), ["cafe01.metadata.json"])
        self.assertEqual(self.codes(), [])

    def test_round_trip(self) -> None:
        """What is written reads back the same, a non-ASCII username included."""
        info = AuditStreamInfo("cafe01", 5, "2001:db8::1", "XX", True, "zoë")
        self.assertEqual(decode_sidecar(encode_sidecar(info), "cafe01"), info)

    def test_json_encoding_failed(self) -> None:
        """A username that is not text (a lone surrogate) cannot be encoded: the code is logged."""
        info = AuditStreamInfo("cafe01", 5, "192.0.2.1", username="\udcff")
        self.assertFalse(write_sidecar(self.local, info, self.log))
        self.assertEqual(self.codes(), [messages.AUDIT_S3_FAILED_METADATA_JSON_ENCODING.code])
        self.assertEqual(os.listdir(self.local), [])

    def test_creating_failed(self) -> None:
        """When the temporary file cannot be created: AUDIT_S3_FAILED_CREATING_METADATA_FILE."""
        os.mkdir(os.path.join(self.local, "cafe01.metadata.json.tmp"))
        self.assertFalse(write_sidecar(self.local, INFO, self.log))
        self.assertEqual(self.codes(), [messages.AUDIT_S3_FAILED_CREATING_METADATA_FILE.code])

    def test_writing_failed(self) -> None:
        """When it cannot be put in place: AUDIT_S3_FAILED_WRITING_METADATA_FILE."""
        os.mkdir(os.path.join(self.local, "cafe01.metadata.json"))
        self.assertFalse(write_sidecar(self.local, INFO, self.log))
        self.assertEqual(self.codes(), [messages.AUDIT_S3_FAILED_WRITING_METADATA_FILE.code])

    def test_writing_failed_disk_full(self) -> None:
        """A write the disk refuses is AUDIT_S3_FAILED_WRITING_METADATA_FILE too."""

        def full(fd: int, data: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.patch(localfile, "write_all", full)
        self.assertFalse(write_sidecar(self.local, INFO, self.log))
        self.assertEqual(self.codes(), [messages.AUDIT_S3_FAILED_WRITING_METADATA_FILE.code])

    def test_close_failed(self) -> None:
        """A failing close: AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE; the old sidecar stays."""
        self.assertTrue(write_sidecar(self.local, INFO, self.log))
        real_open = os.open
        opened: set[int] = set()

        def recording_open(*args: Any, **kwargs: Any) -> int:
            fd = real_open(*args, **kwargs)
            opened.add(fd)
            return fd

        self.patch(os, "open", recording_open)
        self.patch(localfile, "close_fd", failing_close(opened))  # type: ignore[arg-type]
        later = AuditStreamInfo("cafe01", 1_700_000_000, "192.0.2.9", "FR", True, "erin")
        self.assertFalse(write_sidecar(self.local, later, self.log))
        self.assertEqual(self.codes(), [messages.AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE.code])
        self.assertEqual(read_sidecar(self.local, "cafe01"), INFO)

    def test_decode_refuses(self) -> None:
        """Anything but a sidecar is refused with ValueError."""
        for raw in (b"", b"[]", b'{"startTime": true}', b'{"startTime": 1, "username": 5}'):
            with self.assertRaises(ValueError):
                decode_sidecar(raw, "x")


class ObjectMetadataTests(SynchronousTestCase):
    def test_contents(self) -> None:
        """timestamp, authenticated and country always; username and ip when asked for."""
        info = AuditStreamInfo("c", 42, "192.0.2.1", "DE", True, "frank")
        self.assertEqual(
            object_metadata(info, username=False, ip=False),
            {"timestamp": "42", "authenticated": "true", "country": "DE"},
        )
        self.assertEqual(
            object_metadata(info, username=True, ip=True),
            {
                "timestamp": "42",
                "authenticated": "true",
                "country": "DE",
                "username": "frank",
                "ip": "192.0.2.1",
            },
        )

    def test_unknown_username_left_out(self) -> None:
        """Before authentication there is no username to expose."""
        info = AuditStreamInfo("c", 42, "192.0.2.1")
        self.assertNotIn("username", object_metadata(info, username=True, ip=False))

    def test_header_values(self) -> None:
        """Text a header cannot carry is sent as an RFC 2047 encoded word."""
        self.assertEqual(header_value("alice"), "alice")
        self.assertEqual(header_value("zoë"), "=?UTF-8?B?em/Dqw==?=")
        self.assertEqual(header_value("a\r\nb"), "=?UTF-8?B?YQ0KYg==?=")
        self.assertTrue(header_value("\udcff").isascii())


class ScanTests(SpoolTestCase):
    def test_scan(self) -> None:
        """Non-empty dotless files are streams; live ones and others are left alone."""
        for name, data in (
            ("aa", b"x"),
            ("bb", b"yy"),
            ("cc", b""),
            ("dd.metadata.json", b"{}"),
            ("live", b"z"),
            (".accesstest", b""),
        ):
            with open(os.path.join(self.local, name), "wb") as file:
                file.write(data)
        os.mkdir(os.path.join(self.local, "ee"))
        result = thd_scan(self.local, threading.Lock(), {"live"})
        found = [(s.connection_id, s.size) for s in result.streams]
        self.assertEqual(found, [("aa", 1), ("bb", 2)])
        self.assertEqual(result.orphans, ["dd"])
        self.assertEqual(result.vanished, [])
        self.assertEqual(result.unreadable, [])

    def test_remove_failed(self) -> None:
        """A removal that fails is reported with the path, not raised."""

        stream = os.path.join(self.local, "ff")

        def refuse(path: str) -> None:
            if path == stream:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            os.remove(path)

        with open(stream, "wb"):
            pass
        self.patch(localfile, "remove", refuse)
        failures = thd_remove_spooled(self.local, "ff")
        self.assertEqual([path for path, _ in failures], [stream])
