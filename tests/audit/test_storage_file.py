"""The ``file`` storage, the directory checks at start-up, and building a storage from config."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap

from twisted.application.service import IService
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container.audit.storage import (
    ACCESS_TEST_FILE,
    build_storage,
    check_directories,
    check_writable,
)
from conch_container.audit.storage.file import FileStorage
from conch_container.audit.storage.s3 import S3Storage
from conch_container.config.audit import AuditConfig, AuditFileConfig, AuditS3Config
from conch_container.config.errors import ConfigError
from conch_container.interfaces import AuditStreamInfo, IAuditSink, IAuditStorage
from conch_container.log import CodeLogger

INFO = AuditStreamInfo("0123abcd", 1_700_000_000, "192.0.2.1")


class FileStorageTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.storage = FileStorage(self.directory)
        self.path = os.path.join(self.directory, INFO.connection_id)

    def test_interfaces(self) -> None:
        """FileStorage is an IAuditStorage named ``file``; its sinks are IAuditSinks."""
        self.assertTrue(verifyObject(IAuditStorage, self.storage))
        self.assertEqual(self.storage.name, "file")
        self.assertFalse(IService.providedBy(self.storage))
        sink = self.storage.open(INFO)
        self.assertTrue(verifyObject(IAuditSink, sink))
        sink.close()

    def test_created_private(self) -> None:
        """The file is named by the connection id alone and is readable by the owner only."""
        sink = self.storage.open(INFO)
        self.assertEqual(os.listdir(self.directory), [INFO.connection_id])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        sink.close()

    def test_never_reopened(self) -> None:
        """An existing record is never appended to by a new stream."""
        self.storage.open(INFO).close()
        with self.assertRaises(FileExistsError):
            self.storage.open(INFO)

    def test_appends_and_is_on_disk_at_once(self) -> None:
        """Each write is in the file as soon as it returns, without close or flush."""
        sink = self.storage.open(INFO)
        sink.write(b"first ")
        with open(self.path, "rb") as file:
            self.assertEqual(file.read(), b"first ")
        sink.write(b"second")
        sink.update(AuditStreamInfo(INFO.connection_id, 1, "192.0.2.1", authenticated=True))
        with open(self.path, "rb") as file:
            self.assertEqual(file.read(), b"first second")
        sink.close()
        sink.close()
        with self.assertRaises(ValueError):
            sink.write(b"late")

    def test_survives_sigkill(self) -> None:
        """A process killed right after a write returned leaves everything it wrote."""
        script = textwrap.dedent(
            f"""
            import os, signal
            from conch_container.audit.storage.file import FileStorage
            from conch_container.interfaces import AuditStreamInfo
            sink = FileStorage({self.directory!r}).open(AuditStreamInfo("killed", 1, "::1"))
            for i in range(1000):
                sink.write(b"%04d" % i)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=root, capture_output=True, timeout=60
        )
        self.assertEqual(result.returncode, -9, result.stderr)
        with open(os.path.join(self.directory, "killed"), "rb") as file:
            self.assertEqual(file.read(), b"".join(b"%04d" % i for i in range(1000)))

    def test_bad_connection_ids(self) -> None:
        """An id that is no plain dotless file name is refused before anything is created."""
        for bad in ("", "../x", "a/b", "a.b", ".", "a\0b"):
            with self.assertRaises(ValueError):
                self.storage.open(AuditStreamInfo(bad, 1, "::1"))
        self.assertEqual(os.listdir(self.directory), [])

    def test_write_failure_keeps_size_true(self) -> None:
        """A write the disk refuses half-way raises, and the size stays what the file holds."""
        sink = self.storage.open(INFO)
        sink.write(b"abc")
        real_write = os.write
        calls = []

        def half_then_full(fd: int, data: bytes) -> int:
            calls.append(len(data))
            if len(calls) == 1:
                return real_write(fd, bytes(data[:2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.patch(os, "write", half_then_full)
        with self.assertRaises(OSError):
            sink.write(b"defg")
        self.assertEqual(sink._file.size, 5)  # type: ignore[attr-defined]


class DirectoryCheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def audit(self, storage: str, directory: str, enable: bool = True) -> AuditConfig:
        return AuditConfig(
            enable=enable,
            format="binary",
            storage=storage,
            file=AuditFileConfig(directory=directory),
            s3=AuditS3Config(local=directory, access_key="k", secret_key="s", bucket="b"),
        )

    def test_writable(self) -> None:
        """A writable directory passes, and the probe file is gone afterwards."""
        check_directories(self.audit("file", self.directory))
        check_directories(self.audit("s3", self.directory))
        self.assertEqual(os.listdir(self.directory), [])

    def test_missing(self) -> None:
        """A directory that does not exist is a ConfigError naming the key."""
        missing = os.path.join(self.directory, "nope")
        for storage, key in (("file", "audit.file.directory"), ("s3", "audit.s3.local")):
            with self.assertRaises(ConfigError) as caught:
                check_directories(self.audit(storage, missing))
            self.assertEqual(caught.exception.key_path, key)
            self.assertIn("does not exist", str(caught.exception))

    def test_not_writable(self) -> None:
        """A directory that refuses the probe file is a ConfigError naming the key."""
        os.mkdir(os.path.join(self.directory, ACCESS_TEST_FILE))  # the probe cannot be a file
        with self.assertRaises(ConfigError) as caught:
            check_writable(self.directory, "audit.s3.local")
        self.assertEqual(caught.exception.key_path, "audit.s3.local")
        self.assertIn("not writable", caught.exception.problem)

    def test_empty(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            check_writable("", "audit.file.directory")
        self.assertEqual(str(caught.exception), "audit.file.directory: must not be empty")

    def test_disabled_or_none(self) -> None:
        """Nothing is checked when the audit log is off or stores nowhere."""
        missing = os.path.join(self.directory, "nope")
        check_directories(self.audit("file", missing, enable=False))
        check_directories(self.audit("none", missing))


class BuildStorageTests(SynchronousTestCase):
    def test_build(self) -> None:
        """``audit.storage`` picks the storage; ``none`` builds nothing."""
        log = CodeLogger("tests.audit")
        s3 = AuditS3Config(local="/spool", access_key="k", secret_key="s", bucket="b")
        built = build_storage(None, log, AuditConfig(storage="file"))
        self.assertIsInstance(built, FileStorage)
        self.assertIsNone(build_storage(None, log, AuditConfig(storage="none")))
        storage = build_storage(None, log, AuditConfig(storage="s3", s3=s3), shutdown_deadline=7)
        assert isinstance(storage, S3Storage)
        self.assertTrue(IService.providedBy(storage))
        self.assertEqual((storage.deadline, storage.local, storage.name), (7, "/spool", "s3"))
