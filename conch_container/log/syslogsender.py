"""Moves queued syslog lines to the daemon through a reactor link, reconnecting when it breaks.

Everything here runs in the reactor thread. The writer (any thread) puts
lines into a :class:`~conch_container.log.linequeue.LineQueue` and calls
:meth:`SyslogSender.drain` in the reactor thread. The sender opens a link
when it has none (resolving the server's name each time, so a server that
moved is found again), sends what the link takes, and leaves the rest
queued until the link is writable again.

When a link breaks, a link that had carried lines is reopened at once (the
daemon restarted); otherwise, and after every failed attempt to open one, the
next attempt waits, twice as long each time up to :data:`MAX_RETRY_DELAY`.
Lines logged meanwhile wait in the queue, which drops the oldest when full;
once lines flow again, the first message says how many were dropped.

An outage (the daemon cannot be reached, or a new link breaks before it
carried a line) is reported once, through ``report`` (the process's standard
error, as for every other log destination), and again only after lines have
flowed in between. A link that carried lines and then broke is not reported
by itself: the line is sent again on a new link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from conch_container.log.linequeue import LineQueue
from conch_container.log.syslogdestination import Destination
from conch_container.log.sysloglinks import Link, LinkBroken, open_link

#: The wait before the first retry after a failed connection; it doubles per failure.
FIRST_RETRY_DELAY = 0.5

#: The longest wait between two attempts to reach the daemon.
MAX_RETRY_DELAY = 30.0


class SyslogSender:
    """Sends the lines of ``lines`` to ``destination``.

    :param reactor: see :func:`~conch_container.log.sysloglinks.open_link`.
    :param notice: the encoded message that says how many lines were dropped.
    :param report: called with the reason when the daemon cannot be reached
        or a link breaks (once per outage).
    """

    def __init__(
        self,
        reactor: Any,
        destination: Destination,
        lines: LineQueue,
        *,
        notice: Callable[[int], bytes],
        report: Callable[[str], None],
    ) -> None:
        self._reactor = reactor
        self._destination = destination
        self._lines = lines
        self._notice = notice
        self._report = report
        self._link: Link | None = None
        self._opening: Deferred[Any] | None = None
        self._retry: IDelayedCall | None = None
        self._failures = 0
        self._reported = False
        self._draining = False
        self._drain_again = False
        self._closed = False

    def drain(self) -> None:
        """Send the queued lines, opening a link first if there is none."""
        self._lines.draining()
        if self._closed:
            return
        if self._draining:
            # Called back from inside a send (a link that broke, Twisted
            # logging about a port): the loop below takes the new lines too.
            self._drain_again = True
            return
        self._draining = True
        try:
            self._drain_again = True
            while self._drain_again and not self._closed:
                self._drain_again = False
                self._drain_once()
        finally:
            self._draining = False

    def _drain_once(self) -> None:
        link = self._link
        if link is None:
            if self._opening is None and self._retry is None:
                self._open()
            return
        dropped = self._lines.take_dropped()
        if dropped and not self._send(link, self._notice(dropped), dropped=dropped):
            return
        while (line := self._lines.take()) is not None:
            if not self._send(link, line):
                return

    def _send(self, link: Link, line: bytes, *, dropped: int = 0) -> bool:
        """Send one line; False when it went back (busy link or broken link).

        :param dropped: for the notice of dropped lines, the count to put
            back if it cannot be sent.
        """
        try:
            sent = link.send(line)
        except MessageLengthError:
            # Too big for one datagram: this line is lost, the next may pass.
            self._lines.count_dropped(1)
            return True
        except LinkBroken as e:
            self._give_back(line, dropped)
            self._lost(link, str(e))
            return False
        if not sent:
            self._give_back(line, dropped)
            return False
        # Lines flow: whatever fails next is a new outage.
        self._reported = False
        self._failures = 0
        return True

    def _give_back(self, line: bytes, dropped: int) -> None:
        if dropped:
            self._lines.count_dropped(dropped)
        else:
            self._lines.put_back(line)

    def _open(self) -> None:
        opening = Deferred.fromCoroutine(open_link(self._reactor, self._destination, self))
        # Set before the callbacks: they run at once when the link opened at once.
        self._opening = opening
        opening.addCallbacks(self._opened, self._open_failed)

    def _opened(self, link: Link) -> None:
        self._opening = None
        if self._closed:
            link.close()
            return
        self._link = link
        self.drain()

    def _open_failed(self, failure: Failure) -> None:
        self._opening = None
        if self._closed:
            return
        self._retry_later(f"cannot reach syslog: {failure.getErrorMessage()}")

    def _retry_later(self, reason: str) -> None:
        self._failures += 1
        delay = min(MAX_RETRY_DELAY, FIRST_RETRY_DELAY * 2 ** (self._failures - 1))
        self._retry = self._reactor.callLater(delay, self._retry_now)
        # Last: whatever the report sets off finds the retry scheduled.
        self._outage(reason)

    def _retry_now(self) -> None:
        self._retry = None
        self.drain()

    def _outage(self, reason: str) -> None:
        if not self._reported:
            self._reported = True
            self._report(reason)

    def _lost(self, link: Link, reason: str) -> None:
        if link is not self._link:
            return
        self._link = None
        link.close()
        if link.carried_lines:
            # Most likely the daemon restarted, and a new link works at once;
            # if not, opening it fails and that is reported.
            self.drain()
        else:
            self._retry_later(f"lost the syslog connection: {reason}")

    # The LinkOwner interface, for the links.

    def link_writable(self) -> None:
        self.drain()

    def link_lost(self, link: Link, reason: str) -> None:
        self._lost(link, reason)

    def reconnect(self) -> None:
        """Close the link and open a new one (``SIGHUP``: the daemon may have moved)."""
        if self._closed:
            return
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._failures = 0
        if self._opening is None:
            self._open()

    def close(self) -> Deferred[None]:
        """Send what the link takes at once, then close it; fires when it is gone."""
        if self._closed:
            return succeed(None)
        if self._link is not None:
            self.drain()
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._opening is not None:
            self._opening.cancel()
        link, self._link = self._link, None
        return link.close() if link is not None else succeed(None)
