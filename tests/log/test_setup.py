"""Tests for conch_container.log.setup and conch_container.log.early."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import LogBeginner, Logger, LoggingFile, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.config.log import LogConfig, SyslogConfig
from conch_container.log import CodeLogger
from conch_container.log.early import emit_early, real_stderr, real_stdout
from conch_container.log.observers import FileSink, StreamSink
from conch_container.log.setup import LogSetupError, install, start_logging
from conch_container.log.syslog import SyslogSink
from tests.log.syslogdaemons import SyslogTestCase


def log_config(**overrides: Any) -> LogConfig:
    """A ``config.log`` with ContainerSSH's defaults and ``overrides``."""
    return LogConfig(**overrides)


class ThreadsReactor:
    """The part of IReactorThreads the SIGHUP handler uses."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append(lambda: f(*args, **kwargs))


def publish(observer: Any, message: messages.MessageCode, text: str, **fields: Any) -> None:
    CodeLogger("t", observer=LogPublisher(observer)).event(message, text, **fields)


class StartLoggingTests(SynchronousTestCase):
    def test_stdout(self) -> None:
        """The default destination is standard output, in ljson, at notice level."""
        stdout = io.StringIO()
        output = start_logging(log_config(), stdout=stdout)
        self.addCleanup(output.close)
        self.assertIsInstance(output.observer.sink, StreamSink)
        publish(output.observer, messages.SSH_SHUTDOWN, "shown")
        publish(output.observer, messages.SSH_CONNECTED, "hidden")
        [line] = stdout.getvalue().splitlines()
        self.assertEqual(json.loads(line)["message"], "shown")

    def test_text_and_level(self) -> None:
        """Format and level come from the configuration (names or numbers)."""
        stdout = io.StringIO()
        output = start_logging(log_config(format="text", level="7"), stdout=stdout)
        self.addCleanup(output.close)
        publish(output.observer, messages.DOCKER_EXEC, "debug line")
        self.assertIn("\tdebug\tDOCKER_EXEC\tdebug line", stdout.getvalue())

    def test_test_destination(self) -> None:
        """The ``test`` destination keeps records and lines in memory."""
        output = start_logging(log_config(destination="test"))
        assert output.memory is not None
        publish(output.observer, messages.SSH_SHUTDOWN, "kept")
        self.assertEqual([r.message for r in output.memory.records], ["kept"])
        self.assertEqual(len(output.memory.lines), 1)

    def test_file(self) -> None:
        """The ``file`` destination appends to the configured file."""
        path = self.mktemp()
        output = start_logging(log_config(destination="file", file=path))
        self.addCleanup(output.close)
        self.assertIsInstance(output.observer.sink, FileSink)
        publish(output.observer, messages.SSH_SHUTDOWN, "to file")
        with open(path, encoding="utf-8") as f:
            self.assertEqual(json.loads(f.read())["message"], "to file")

    def test_file_open_failure(self) -> None:
        """An unopenable file is LOG_FILE_OPEN_FAILED on stderr and a LogSetupError."""
        stderr = io.StringIO()
        path = os.path.join(self.mktemp(), "no", "such.log")
        error = self.assertRaises(
            LogSetupError,
            start_logging,
            log_config(destination="file", file=path),
            stderr=stderr,
        )
        self.assertIs(error.code, messages.LOG_FILE_OPEN_FAILED)
        report = json.loads(stderr.getvalue())
        self.assertEqual(report["code"], "LOG_FILE_OPEN_FAILED")
        self.assertEqual(report["details"]["file"], path)

    def test_bad_settings(self) -> None:
        """Unknown formats, destinations or levels are CORE_CONFIG_ERROR."""
        for bad in ({"format": "xml"}, {"destination": "kafka"}, {"level": "loud"}):
            stderr = io.StringIO()
            error = self.assertRaises(
                LogSetupError, start_logging, log_config(**bad), stderr=stderr
            )
            self.assertIs(error.code, messages.CORE_CONFIG_ERROR)
            self.assertEqual(json.loads(stderr.getvalue())["code"], "CORE_CONFIG_ERROR")

    def test_syslog_unreachable(self) -> None:
        """A syslog destination nobody listens on is CORE_CONFIG_ERROR."""
        stderr = io.StringIO()
        syslog = SyslogConfig(destination=os.path.join(tempfile.gettempdir(), "cc-none"))
        error = self.assertRaises(
            LogSetupError,
            start_logging,
            log_config(destination="syslog", syslog=syslog),
            stderr=stderr,
        )
        self.assertIs(error.code, messages.CORE_CONFIG_ERROR)


class SyslogSetupTests(SyslogTestCase):
    async def test_syslog(self) -> None:
        """The ``syslog`` destination sends to the configured socket (on the global reactor)."""
        path = self.socket_path()
        daemon, _ = self.unix_datagram_daemon(path)
        syslog = SyslogConfig(destination=path, facility="local0", tag="t", pid=False)
        output = start_logging(log_config(destination="syslog", syslog=syslog))
        sink = output.observer.sink
        assert isinstance(sink, SyslogSink)

        def close() -> Deferred[None]:
            output.close()
            return sink.when_closed()

        self.addCleanup(close)
        publish(output.observer, messages.SSH_SHUTDOWN, "via syslog")
        self.assertTrue((await daemon.next()).startswith(b"<133>"))


class SighupTests(SynchronousTestCase):
    def test_sighup_reopens_in_reactor_thread(self) -> None:
        """SIGHUP schedules a reopen through callFromThread; close restores the old handler."""
        before = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, before)
        path = self.mktemp()
        reactor = ThreadsReactor()
        output = start_logging(log_config(destination="file", file=path), reactor=reactor)
        publish(output.observer, messages.SSH_SHUTDOWN, "one")
        os.rename(path, path + ".1")

        os.kill(os.getpid(), signal.SIGHUP)
        # The handler runs between bytecodes of the main thread: it must
        # only have scheduled the reopen.
        self.assertEqual(len(reactor.calls), 1)
        self.assertFalse(os.path.exists(path))
        reactor.calls[0]()
        publish(output.observer, messages.SSH_SHUTDOWN, "two")
        with open(path, encoding="utf-8") as f:
            self.assertEqual(json.loads(f.read())["message"], "two")

        output.close()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)

    def test_no_handler_for_stdout(self) -> None:
        """Nothing to reopen on standard output: SIGHUP is left alone."""
        before = signal.getsignal(signal.SIGHUP)
        output = start_logging(log_config(), stdout=io.StringIO(), reactor=ThreadsReactor())
        self.addCleanup(output.close)
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)

    def test_reopen_method(self) -> None:
        """LogOutput.reopen reopens the file."""
        path = self.mktemp()
        output = start_logging(log_config(destination="file", file=path))
        self.addCleanup(output.close)
        os.rename(path, path + ".1")
        output.reopen()
        self.assertTrue(os.path.exists(path))


class InstallTests(SynchronousTestCase):
    def test_install_replays_buffer(self) -> None:
        """install begins logging to the observer, replaying earlier events, not touching stdio."""
        publisher = LogPublisher()
        original = object()
        stdio = SimpleNamespace(stdout=original, stderr=original)
        beginner = LogBeginner(publisher, io.StringIO(), stdio, warnings)
        Logger(observer=publisher).warn("before")
        output = start_logging(log_config(destination="test"))
        assert output.memory is not None
        install(output.observer, beginner)
        Logger(observer=publisher).warn("after")
        self.assertEqual([r.message for r in output.memory.records], ["before", "after"])
        self.assertIs(stdio.stdout, original)
        self.assertIs(stdio.stderr, original)


class EarlyTests(SynchronousTestCase):
    def test_emit_early(self) -> None:
        """emit_early writes one ljson line with the code's level, fields and redaction."""
        stream = io.StringIO()
        emit_early(
            messages.CORE_CONFIG_ERROR,
            "Invalid configuration in {path}: {reason}",
            stream=stream,
            path="/etc/cs.yaml",
            reason="bad key",
            password="hunter2",
        )
        [line] = stream.getvalue().splitlines()
        event = json.loads(line)
        self.assertEqual(list(event), ["timestamp", "level", "code", "message", "details"])
        self.assertEqual(event["level"], "error")
        self.assertEqual(event["code"], "CORE_CONFIG_ERROR")
        self.assertEqual(event["message"], "Invalid configuration in /etc/cs.yaml: bad key")
        self.assertEqual(
            event["details"],
            {"path": "/etc/cs.yaml", "reason": "bad key", "password": "<redacted>"},
        )
        self.assertNotIn("hunter2", line)

    def test_default_stderr(self) -> None:
        """Without a stream the line goes to standard error."""
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        emit_early(messages.CORE_CONFIG_ERROR, "x")
        self.assertEqual(json.loads(stderr.getvalue())["code"], "CORE_CONFIG_ERROR")

    def test_real_streams_skip_redirection(self) -> None:
        """While Twisted has redirected stdout/stderr into the log, the originals are used."""
        stdout, stderr = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", stdout)
        self.patch(sys, "stderr", stderr)
        self.assertIs(real_stdout(), stdout)
        self.assertIs(real_stderr(), stderr)
        self.patch(sys, "stdout", LoggingFile(Logger()))
        self.patch(sys, "stderr", LoggingFile(Logger()))
        self.assertIs(real_stdout(), sys.__stdout__)
        self.assertIs(real_stderr(), sys.__stderr__)


class DuckTypedConfigTests(SynchronousTestCase):
    def test_any_object_with_the_attributes(self) -> None:
        """start_logging accepts any object with the ``config.log`` attributes."""
        stdout = io.StringIO()
        config = SimpleNamespace(
            level="info", format="text", destination="stdout", file="", syslog=None
        )
        output = start_logging(config, stdout=stdout)
        self.addCleanup(output.close)
        publish(output.observer, messages.SSH_CONNECTED, "hello")
        self.assertIn("\tinfo\tSSH_CONNECTED\thello", stdout.getvalue())
