"""Tests for conch_container.log.records and conch_container.log.formats."""

from __future__ import annotations

import json

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.log import CodeLogger, Level
from conch_container.log.formats import (
    format_ljson,
    format_ljson_syslog,
    format_text,
    format_text_syslog,
    line_formatter,
    rfc3339,
    syslog_formatter,
)
from conch_container.log.records import LogRecord, build_record, event_level, jsonable
from tests.log.events import T0, EventList, code_event, foreign_event


def render(event: dict, *, traceback: bool = False) -> LogRecord:
    code, level = event_level(event)
    return build_record(event, code, level, include_traceback=traceback)


def a_failure() -> Failure:
    try:
        raise ConnectionRefusedError("refused\nby peer")
    except ConnectionRefusedError:
        return Failure()


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class LJSONTests(SynchronousTestCase):
    def test_shape(self) -> None:
        """An ljson line is one compact JSON object with the five ContainerSSH keys in order."""
        event = code_event(
            messages.SSH_CONNECTED,
            "Connection from {remoteAddr}",
            connectionId="c1",
            remoteAddr="192.0.2.1:50000",
        )
        line = format_ljson(render(event))
        self.assertEqual(
            line,
            '{"timestamp":"2024-05-01T12:00:00Z","level":"info","code":"SSH_CONNECTED",'
            '"message":"Connection from 192.0.2.1:50000",'
            '"details":{"connectionId":"c1","remoteAddr":"192.0.2.1:50000"}}',
        )
        self.assertNotIn("\n", line)

    def test_level_is_ours_not_twisteds(self) -> None:
        """The level written is the syslog level the event was logged at (notice), not Twisted's."""
        event = code_event(messages.SSH_AVAILABLE, "up", level=Level.NOTICE)
        self.assertEqual(json.loads(format_ljson(render(event)))["level"], "notice")

    def test_details_exclude_twisted_keys(self) -> None:
        """Details are the event's fields only: no log_* keys, no code, no cs_* keys."""
        event = code_event(messages.SSH_CONNECTED, "x", username="u")
        self.assertEqual(json.loads(format_ljson(render(event)))["details"], {"username": "u"})

    def test_bound_fields_come_first(self) -> None:
        """Context bound to the logger appears in details together with the call's fields."""
        events = EventList()

        CodeLogger("t", observer=events).bind(connectionId="c").event(
            messages.SSH_EXIT, "exit {exitStatus}", exitStatus=3
        )
        record = render(events[0])
        self.assertEqual(dict(record.details), {"connectionId": "c", "exitStatus": 3})
        self.assertEqual(record.message, "exit 3")

    def test_unserialisable_values(self) -> None:
        """Values JSON cannot carry are written as str(); NaN is a string; nesting survives."""
        event = code_event(
            messages.SSH_CONNECTED,
            "x",
            obj=Level.DEBUG,
            raw=b"ab",
            nan=float("nan"),
            nested={"a": (1, {2}), 4: None},
            bad=Unprintable(),
        )
        details = json.loads(format_ljson(render(event)))["details"]
        self.assertEqual(details["obj"], 7)
        self.assertEqual(details["raw"], "b'ab'")
        self.assertEqual(details["nan"], "nan")
        self.assertEqual(details["nested"], {"a": [1, [2]], "4": None})
        self.assertEqual(details["bad"], "<unprintable Unprintable>")

    def test_deep_nesting_is_bounded(self) -> None:
        """A self-referencing value does not recurse forever."""
        loop: list = []
        loop.append(loop)
        self.assertIsInstance(json.dumps(jsonable(loop)), str)

    def test_failure_summary(self) -> None:
        """An attached failure becomes a one-line details.error; no traceback unless asked."""
        event = code_event(messages.DOCKER_CONNECTION_FAILED, "down", failure=a_failure())
        line = json.loads(format_ljson(render(event)))
        self.assertEqual(line["details"]["error"], "ConnectionRefusedError: refused by peer")
        self.assertNotIn("traceback", line["details"])

    def test_failure_traceback_at_debug(self) -> None:
        """With the traceback requested (debug output) it is in details.traceback."""
        event = code_event(messages.DOCKER_CONNECTION_FAILED, "down", failure=a_failure())
        details = json.loads(format_ljson(render(event, traceback=True)))["details"]
        self.assertIn("Traceback", details["traceback"])
        self.assertIn("ConnectionRefusedError", details["traceback"])

    def test_explicit_error_field_wins(self) -> None:
        """A caller's own ``error`` field is not overwritten by the failure summary."""
        event = code_event(messages.UNKNOWN_ERROR, "x", error="mine", failure=a_failure())
        self.assertEqual(render(event).details["error"], "mine")

    def test_plain_logger_with_code(self) -> None:
        """A plain Logger event with ``code=`` is rendered with its fields and catalogue level.

        Twisted's ``info`` covers both notice and info; the catalogue decides.
        """
        self.assertEqual(messages.SSH_SHUTDOWN.level, Level.NOTICE)
        events = EventList()
        Logger(namespace="t", observer=events).info(
            "Closing {count} connections", code="SSH_SHUTDOWN", count=2
        )
        record = render(events[0])
        self.assertEqual((record.code, record.level), ("SSH_SHUTDOWN", Level.NOTICE))
        self.assertEqual(dict(record.details), {"count": 2})
        self.assertEqual(record.message, "Closing 2 connections")

    def test_plain_logger_level_differs(self) -> None:
        """A plain Logger event logged at another level than the catalogue's keeps its own."""
        events = EventList()
        Logger(namespace="t", observer=events).error("x", code="SSH_CONNECTED")
        self.assertEqual(render(events[0]).level, Level.ERROR)


class TextTests(SynchronousTestCase):
    def test_shape(self) -> None:
        """A text line is TIMESTAMP, LEVEL, CODE, MESSAGE (key=value ...) separated by tabs."""
        event = code_event(
            messages.SSH_CONNECTED, "Connection from {remoteAddr}", remoteAddr="192.0.2.1:1", n=5
        )
        self.assertEqual(
            format_text(render(event)),
            "2024-05-01T12:00:00Z\tinfo\tSSH_CONNECTED\t"
            "Connection from 192.0.2.1:1 (remoteAddr=192.0.2.1:1 n=5)",
        )

    def test_no_details(self) -> None:
        """Without details there is no parenthesis."""
        event = code_event(messages.SSH_AVAILABLE, "up")
        self.assertTrue(format_text(render(event)).endswith("\tup"))

    def test_control_characters_escaped(self) -> None:
        """Newlines and tabs in the message or values cannot split a record."""
        event = code_event(messages.SSH_CONNECTED, "a\nb\tc {v}", v="x\ny")
        line = format_text(render(event))
        self.assertNotIn("\n", line)
        self.assertEqual(line.count("\t"), 3)
        self.assertIn("a\\nb\\tc x\\ny (v=x\\ny)", line)

    def test_non_string_values_as_json(self) -> None:
        """Non-string values are written as JSON (true, null, lists)."""
        event = code_event(messages.SSH_CONNECTED, "m", a=True, b=None, c=[1, "x"])
        self.assertTrue(format_text(render(event)).endswith('(a=true b=null c=[1,"x"])'))

    def test_traceback_continuation_lines(self) -> None:
        """A traceback follows the record on lines that start with a tab."""
        event = code_event(messages.UNKNOWN_ERROR, "boom", failure=a_failure())
        first, *rest = format_text(render(event, traceback=True)).split("\n")
        self.assertTrue(first.startswith("2024-05-01T12:00:00Z\terror\tUNKNOWN_ERROR\tboom ("))
        self.assertIn("error=ConnectionRefusedError: refused by peer", first)
        self.assertTrue(rest)
        self.assertTrue(all(line.startswith("\t") for line in rest))


class SyslogBodyTests(SynchronousTestCase):
    def test_ljson_body_omits_timestamp_and_level(self) -> None:
        """The syslog ljson body has code, message and details only."""
        event = code_event(messages.SSH_CONNECTED, "hi {username}", username="u")
        self.assertEqual(
            format_ljson_syslog(render(event)),
            '{"code":"SSH_CONNECTED","message":"hi u","details":{"username":"u"}}',
        )

    def test_text_body(self) -> None:
        """The syslog text body is CODE MESSAGE (labels) on one line, traceback escaped."""
        event = code_event(messages.UNKNOWN_ERROR, "boom", failure=a_failure())
        body = format_text_syslog(render(event, traceback=True))
        self.assertTrue(body.startswith("UNKNOWN_ERROR boom (error=ConnectionRefusedError"))
        self.assertIn("traceback=Traceback", body)
        self.assertNotIn("\n", body)


class ForeignEventTests(SynchronousTestCase):
    def test_info_is_debug(self) -> None:
        """Twisted's info messages are CORE_FRAMEWORK_LOG at debug, with their namespace."""
        record = render(foreign_event(LogLevel.info, "Starting factory {f}", f="F"))
        self.assertEqual((record.code, record.level), ("CORE_FRAMEWORK_LOG", Level.DEBUG))
        self.assertEqual(record.message, "Starting factory F")
        self.assertEqual(dict(record.details), {"namespace": "twisted.test.foreign"})

    def test_warning(self) -> None:
        """Twisted's warnings stay warnings."""
        self.assertEqual(
            event_level(foreign_event(LogLevel.warn, "careful")),
            ("CORE_FRAMEWORK_LOG", Level.WARNING),
        )

    def test_error_is_unknown_error(self) -> None:
        """Error and critical events are UNKNOWN_ERROR at their level."""
        self.assertEqual(
            event_level(foreign_event(LogLevel.error, "bad")), ("UNKNOWN_ERROR", Level.ERROR)
        )
        self.assertEqual(
            event_level(foreign_event(LogLevel.critical, "worse")), ("UNKNOWN_ERROR", Level.CRIT)
        )

    def test_failure(self) -> None:
        """A foreign failure is UNKNOWN_ERROR with its summary; Twisted keys are not details."""
        events = EventList()
        Logger(namespace="twisted.x", observer=events).failure("Unhandled Error", a_failure())
        events[0]["log_time"] = T0
        record = render(events[0])
        self.assertEqual((record.code, record.level), ("UNKNOWN_ERROR", Level.CRIT))
        self.assertEqual(
            dict(record.details),
            {"namespace": "twisted.x", "error": "ConnectionRefusedError: refused by peer"},
        )
        self.assertEqual(record.message, "Unhandled Error")

    def test_legacy_err(self) -> None:
        """A legacy log.err event: the message is its "why", the traceback is not in it."""
        failure = a_failure()
        event = {
            "message": (),
            "isError": 1,
            "failure": failure,
            "why": "Oops",
            "time": T0,
            "log_time": T0,
            "log_text": "Oops\n" + failure.getTraceback(),
            "log_format": "{log_text}",
            "log_level": LogLevel.critical,
            "log_namespace": "log_legacy",
            "system": "-",
        }
        record = render(event)
        self.assertEqual((record.code, record.message), ("UNKNOWN_ERROR", "Oops"))
        self.assertEqual(record.details["error"], "ConnectionRefusedError: refused by peer")

    def test_connection_scoped_errors_are_debug(self) -> None:
        """Conch's reports of what one peer did (error level, no failure) are kept at debug."""
        from twisted.conch.ssh.transport import SSHServerTransport

        event = foreign_event(
            LogLevel.error,
            "Got remote error, code {code}\nreason: {description}",
            source=SSHServerTransport(),
            code=11,
            description=b"disconnected by user",
        )
        self.assertEqual(event_level(event), ("CORE_FRAMEWORK_LOG", Level.DEBUG))

    def test_connection_scoped_failures_stay_errors(self) -> None:
        """An exception raised in a connection's code is still UNKNOWN_ERROR."""
        from twisted.internet.protocol import Protocol

        events = EventList()
        Logger(source=Protocol(), observer=events).failure("oops", a_failure())
        self.assertEqual(event_level(events[0]), ("UNKNOWN_ERROR", Level.CRIT))

    def test_unformattable(self) -> None:
        """A broken format still produces a message instead of an exception."""
        record = render(foreign_event(LogLevel.warn, "{missing"))
        self.assertIn("Unable to format event", record.message)


class HelperTests(SynchronousTestCase):
    def test_rfc3339(self) -> None:
        """Timestamps are RFC 3339 UTC at second precision."""
        self.assertEqual(rfc3339(T0 + 0.9), "2024-05-01T12:00:00Z")

    def test_formatter_lookup(self) -> None:
        """Format names map to formatters; unknown names are rejected."""
        self.assertIs(line_formatter("ljson"), format_ljson)
        self.assertIs(line_formatter("text"), format_text)
        self.assertIs(syslog_formatter("ljson"), format_ljson_syslog)
        self.assertIs(syslog_formatter("text"), format_text_syslog)
        self.assertRaises(ValueError, line_formatter, "xml")
        self.assertRaises(ValueError, syslog_formatter, "xml")
