"""A connection's own log level (``log.level`` from a configuration server)."""

from __future__ import annotations

from typing import cast

from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.codes import Level
from conch_container.log import CodeLogger
from conch_container.log.formats import line_formatter
from conch_container.log.observers import CodeLogObserver, MemorySink


class ConnectionLevelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sink = MemorySink(line_formatter("ljson"))
        observer = CodeLogObserver(self.sink, level=Level.NOTICE)
        self.log = CodeLogger("tests", observer=cast(ILogObserver, observer))

    def written(self) -> list[str]:
        return [record.code for record in self.sink.records]

    def test_more_verbose_for_one_connection(self) -> None:
        """A connection at debug has its debug events written; the others do not."""
        self.log.event(messages.CONFIG_REQUEST, "gateway")
        self.log.bind(connectionId="c1").at_level(Level.DEBUG).event(
            messages.CONFIG_RESPONSE, "connection"
        )
        self.assertEqual(self.written(), ["CONFIG_RESPONSE"])

    def test_quieter_for_one_connection(self) -> None:
        """A connection at error drops its warnings, which the gateway's level would write."""
        self.log.at_level(Level.ERROR).event(messages.CONFIG_INVALID_STATUS_CODE, "connection")
        self.log.event(messages.CONFIG_INVALID_STATUS_CODE, "gateway")
        self.assertEqual(self.written(), ["CONFIG_INVALID_STATUS_CODE"])

    def test_bind_keeps_the_level(self) -> None:
        """Loggers bound from a connection's logger keep its level."""
        log = self.log.at_level(Level.DEBUG).bind(channelId=1)
        self.assertEqual(log.level, Level.DEBUG)
        log.event(messages.CONFIG_REQUEST, "channel")
        self.assertEqual(self.written(), ["CONFIG_REQUEST"])
