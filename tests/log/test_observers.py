"""Tests for conch_container.log.observers."""

from __future__ import annotations

import json
import os
from io import StringIO

from twisted.logger import ILogObserver, Logger, LogLevel, LogPublisher
from twisted.python import log as legacy_log
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.log import CodeLogger, Level
from conch_container.log.formats import format_ljson, format_text
from conch_container.log.observers import CodeLogObserver, FileSink, MemorySink, StreamSink
from conch_container.log.records import LogRecord
from tests.log.events import code_event, foreign_event


class FailingSink:
    """A sink whose writes fail while ``broken`` is set."""

    def __init__(self) -> None:
        self.broken = True
        self.records: list[LogRecord] = []

    def write(self, record: LogRecord) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        self.records.append(record)

    def reopen(self) -> None:
        raise OSError(13, "Permission denied")

    def close(self) -> None:
        pass


def codes(sink: MemorySink) -> list[str]:
    return [r.code for r in sink.records]


class LevelFilterTests(SynchronousTestCase):
    def emit_all_levels(self, observer: CodeLogObserver) -> None:
        for level in Level:
            observer(code_event(messages.TEST, "{lvl}", level=level, lvl=level.label))

    def test_default_notice(self) -> None:
        """By default events at notice or more severe are written, info and debug are not."""
        sink = MemorySink(format_ljson)
        self.emit_all_levels(CodeLogObserver(sink))
        self.assertEqual(
            [r.message for r in sink.records],
            ["emerg", "alert", "crit", "error", "warning", "notice"],
        )

    def test_configured_level(self) -> None:
        """The configured level is the least severe one written."""
        sink = MemorySink(format_ljson)
        self.emit_all_levels(CodeLogObserver(sink, level=Level.ERROR))
        self.assertEqual([r.message for r in sink.records], ["emerg", "alert", "crit", "error"])

    def test_debug_writes_everything(self) -> None:
        """At debug level every event is written."""
        sink = MemorySink(format_ljson)
        self.emit_all_levels(CodeLogObserver(sink, level=Level.DEBUG))
        self.assertEqual(len(sink.records), 8)

    def test_level_can_change(self) -> None:
        """The level is an attribute that can be changed while running."""
        sink = MemorySink(format_ljson)
        observer = CodeLogObserver(sink)
        observer.level = Level.DEBUG
        observer(code_event(messages.TEST, "x"))
        self.assertEqual(codes(sink), ["TEST"])

    def test_traceback_only_at_debug(self) -> None:
        """A failure's traceback is written only when the observer writes debug output."""
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            failure = Failure()
        for level, expected in ((Level.NOTICE, False), (Level.DEBUG, True)):
            sink = MemorySink(format_ljson)
            CodeLogObserver(sink, level=level)(
                code_event(messages.UNKNOWN_ERROR, "x", failure=failure)
            )
            details = json.loads(sink.lines[0])["details"]
            self.assertEqual(details["error"], "ZeroDivisionError: division by zero")
            self.assertEqual("traceback" in details, expected)

    def test_provides_ilogobserver(self) -> None:
        """The observer is an ILogObserver, so twistd and LogPublisher accept it."""
        self.assertTrue(verifyObject(ILogObserver, CodeLogObserver(MemorySink(format_ljson))))


class ForeignEventTests(SynchronousTestCase):
    def test_twisted_info_hidden_at_notice(self) -> None:
        """Twisted's info chatter does not reach notice output, but is there at debug."""
        event = foreign_event(LogLevel.info, "Starting factory {f!r}", f=object())
        notice, debug = MemorySink(format_ljson), MemorySink(format_ljson)
        CodeLogObserver(notice)(event)
        CodeLogObserver(debug, level=Level.DEBUG)(event)
        self.assertEqual(notice.records, [])
        self.assertEqual(codes(debug), ["CORE_FRAMEWORK_LOG"])

    def test_twisted_warning_and_error_written(self) -> None:
        """Twisted's warnings and errors reach notice output with their codes."""
        sink = MemorySink(format_ljson)
        observer = CodeLogObserver(sink)
        observer(foreign_event(LogLevel.warn, "careful"))
        observer(foreign_event(LogLevel.error, "bad"))
        self.assertEqual(
            [(r.code, r.level) for r in sink.records],
            [("CORE_FRAMEWORK_LOG", Level.WARNING), ("UNKNOWN_ERROR", Level.ERROR)],
        )

    def test_legacy_log_err(self) -> None:
        """``twisted.python.log.err`` through the global publisher becomes UNKNOWN_ERROR."""
        from twisted.logger import globalLogPublisher

        sink = MemorySink(format_ljson)
        observer = CodeLogObserver(sink)
        globalLogPublisher.addObserver(observer)
        try:
            legacy_log.err(ZeroDivisionError("nope"), "Something broke")
        finally:
            globalLogPublisher.removeObserver(observer)
        self.flushLoggedErrors(ZeroDivisionError)
        [line] = [json.loads(line) for line in sink.lines]
        self.assertEqual(line["code"], "UNKNOWN_ERROR")
        self.assertEqual(line["level"], "crit")
        self.assertEqual(line["message"], "Something broke")
        self.assertEqual(line["details"]["error"], "ZeroDivisionError: nope")


class SecretTests(SynchronousTestCase):
    PASSWORD = "s3cr3t-Pa55word"

    def test_password_field_never_written(self) -> None:
        """A password passed as a field, even one the format names, never reaches the output."""
        for formatter in (format_ljson, format_text):
            sink = MemorySink(formatter)
            observer = CodeLogObserver(sink, level=Level.DEBUG)
            publisher = LogPublisher(observer)
            CodeLogger("t", observer=publisher).event(
                messages.AUTH, "login {username} {password}", username="u", password=self.PASSWORD
            )
            # Bypassing CodeLogger: the observer is the second line of defence.
            Logger(observer=publisher).info(
                "raw {password} {token}",
                code="AUTH",
                password=self.PASSWORD,
                token=self.PASSWORD,
                nested={"secret": self.PASSWORD},
            )
            Logger(observer=publisher).warn("foreign {password}", password=self.PASSWORD)
            output = "\n".join(sink.lines)
            self.assertEqual(len(sink.lines), 3)
            self.assertNotIn(self.PASSWORD, output)
            self.assertIn("<redacted>", output)


class WriteFailureTests(SynchronousTestCase):
    def test_reported_once_per_outage(self) -> None:
        """A failing destination is reported once as LOG_WRITE_FAILED, again after recovery."""
        sink, errors = FailingSink(), StringIO()
        observer = CodeLogObserver(sink, error_stream=errors)
        for _ in range(3):
            observer(code_event(messages.SSH_SHUTDOWN, "x"))
        lines = errors.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        report = json.loads(lines[0])
        self.assertEqual(report["code"], "LOG_WRITE_FAILED")
        self.assertEqual(report["level"], "error")
        self.assertIn("No space left on device", report["message"])

        sink.broken = False
        observer(code_event(messages.SSH_SHUTDOWN, "y"))
        self.assertEqual([r.message for r in sink.records], ["y"])
        sink.broken = True
        observer(code_event(messages.SSH_SHUTDOWN, "z"))
        self.assertEqual(len(errors.getvalue().splitlines()), 2)

    def test_no_recursion(self) -> None:
        """A sink that logs while writing does not feed its own events back in."""
        publisher = LogPublisher()
        written: list[LogRecord] = []

        class Chatty:
            def write(self, record: LogRecord) -> None:
                written.append(record)
                Logger(observer=publisher).error("writing {n}", n=len(written))

            def reopen(self) -> None:
                pass

            def close(self) -> None:
                pass

        observer = CodeLogObserver(Chatty())
        publisher.addObserver(observer)
        Logger(observer=publisher).error("first")
        self.assertEqual([r.message for r in written], ["first"])

    def test_closed_observer_drops(self) -> None:
        """After close, events are dropped silently."""
        errors = StringIO()
        sink = MemorySink(format_ljson)
        observer = CodeLogObserver(sink, error_stream=errors)
        observer.close()
        observer(code_event(messages.SSH_SHUTDOWN, "late"))
        self.assertEqual((sink.records, errors.getvalue()), ([], ""))

    def test_reopen_failure(self) -> None:
        """A failed reopen writes LOG_ROTATE_FAILED to the destination still in use."""
        sink = FailingSink()
        sink.broken = False
        CodeLogObserver(sink).reopen()
        self.assertEqual(codes(sink), ["LOG_ROTATE_FAILED"])  # type: ignore[arg-type]
        self.assertIn("Permission denied", sink.records[0].details["error"])


class StreamSinkTests(SynchronousTestCase):
    def test_lines(self) -> None:
        """Each record is one line on the stream."""
        stream = StringIO()
        observer = CodeLogObserver(StreamSink(stream, format_text))
        observer(code_event(messages.SSH_SHUTDOWN, "a"))
        observer(code_event(messages.SSH_SHUTDOWN, "b"))
        self.assertEqual(
            [line.split("\t")[3] for line in stream.getvalue().splitlines()], ["a", "b"]
        )

    def test_unencodable(self) -> None:
        """A line the stream cannot encode is written escaped, not lost."""

        class Ascii(StringIO):
            encoding = "ascii"

            def write(self, s: str) -> int:
                s.encode("ascii")
                return super().write(s)

        stream = Ascii()
        CodeLogObserver(StreamSink(stream, format_ljson))(
            code_event(messages.SSH_SHUTDOWN, "caf\u00e9")
        )
        self.assertIn("caf\\xe9", stream.getvalue())


class FileSinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()

    def lines(self, path: str) -> list[str]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["message"] for line in f]

    def test_appends(self) -> None:
        """The file is opened for appending: existing content stays."""
        with open(self.path, "w") as f:
            f.write('{"message": "old"}\n')
        sink = FileSink(self.path, format_ljson)
        self.addCleanup(sink.close)
        CodeLogObserver(sink)(code_event(messages.SSH_SHUTDOWN, "new"))
        self.assertEqual(self.lines(self.path), ["old", "new"])

    def test_reopen_after_rename(self) -> None:
        """After the file is renamed (rotated), reopen sends new lines to a new file."""
        sink = FileSink(self.path, format_ljson)
        self.addCleanup(sink.close)
        observer = CodeLogObserver(sink)
        observer(code_event(messages.SSH_SHUTDOWN, "one"))
        os.rename(self.path, self.path + ".1")
        observer(code_event(messages.SSH_SHUTDOWN, "two"))
        observer.reopen()
        observer(code_event(messages.SSH_SHUTDOWN, "three"))
        self.assertEqual(self.lines(self.path + ".1"), ["one", "two"])
        self.assertEqual(self.lines(self.path), ["three"])

    def test_reopen_failure_keeps_old_file(self) -> None:
        """When the file cannot be reopened, LOG_ROTATE_FAILED and later lines go to the old one."""
        directory = self.mktemp()
        os.mkdir(directory)
        path = os.path.join(directory, "log")
        sink = FileSink(path, format_ljson)
        self.addCleanup(sink.close)
        observer = CodeLogObserver(sink)
        os.rename(directory, directory + ".gone")
        observer.reopen()
        observer(code_event(messages.SSH_SHUTDOWN, "still here"))
        with open(os.path.join(directory + ".gone", "log"), encoding="utf-8") as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual([line["code"] for line in lines], ["LOG_ROTATE_FAILED", "SSH_SHUTDOWN"])
        self.assertEqual(lines[1]["message"], "still here")

    def test_open_failure(self) -> None:
        """A file that cannot be opened raises OSError."""
        self.assertRaises(
            OSError, FileSink, os.path.join(self.mktemp(), "missing", "log"), format_ljson
        )

    def test_closed(self) -> None:
        """Writing to a closed file sink raises."""
        sink = FileSink(self.path, format_ljson)
        sink.close()
        sink.close()
        self.assertRaises(ValueError, sink.write, LogRecord(0.0, Level.ERROR, "X", "m", {}))
