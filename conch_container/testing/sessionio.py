"""A recording :class:`~conch_container.interfaces.ISessionIO` for backend tests.

It stands where the SSH channel would: it collects stdout and stderr, records
EOF and the exit status, and keeps the producer the backend registered, so a
test can pause and resume the backend's output the way a full SSH window does.
Operators' tests of their own backends can use it too.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from conch_container.interfaces import ExitStatus, ISessionIO


@implementer(ISessionIO)
class RecordingSessionIO:
    """Collects everything a backend session sends to its channel.

    :ivar stdout_data: all stdout bytes so far.
    :ivar stderr_data: all stderr bytes so far.
    :ivar closed: whether :meth:`output_closed` was called.
    :ivar status: the :class:`ExitStatus`, once :meth:`exited` was called.
    :ivar producer: the currently registered producer, if any.
    :ivar events: the order of ``output_closed``/``exited``/producer calls.
    """

    def __init__(self) -> None:
        self._stdout = bytearray()
        self._stderr = bytearray()
        self.closed = False
        self.status: ExitStatus | None = None
        self.producer: Any = None
        self.events: list[str] = []
        self._exit_waiters: list[Deferred[ExitStatus]] = []
        self._output_waiters: list[tuple[bytes, Deferred[bytes]]] = []

    @property
    def stdout_data(self) -> bytes:
        return bytes(self._stdout)

    @property
    def stderr_data(self) -> bytes:
        return bytes(self._stderr)

    # -- ISessionIO

    def stdout(self, data: bytes) -> None:
        self._stdout += data
        self._check_output()

    def stderr(self, data: bytes) -> None:
        self._stderr += data

    def output_closed(self) -> None:
        if self.closed:
            raise AssertionError("output_closed called twice")
        self.closed = True
        self.events.append("output_closed")

    def exited(self, status: ExitStatus) -> None:
        if self.status is not None:
            raise AssertionError("exited called twice")
        self.status = status
        self.events.append("exited")
        waiters, self._exit_waiters = self._exit_waiters, []
        for d in waiters:
            d.callback(status)

    def register_producer(self, producer: Any) -> None:
        self.producer = producer
        self.events.append("register_producer")

    def unregister_producer(self) -> None:
        self.producer = None
        self.events.append("unregister_producer")

    # -- for tests

    def when_exited(self) -> Deferred[ExitStatus]:
        """Fires with the exit status (at once if the program already exited)."""
        d: Deferred[ExitStatus] = Deferred()
        if self.status is not None:
            d.callback(self.status)
        else:
            self._exit_waiters.append(d)
        return d

    def when_stdout_contains(self, needle: bytes) -> Deferred[bytes]:
        """Fires with all stdout so far once it contains ``needle``."""
        d: Deferred[bytes] = Deferred()
        self._output_waiters.append((needle, d))
        self._check_output()
        return d

    def _check_output(self) -> None:
        if not self._output_waiters:
            return
        pending = []
        for needle, d in self._output_waiters:
            if needle in self._stdout:
                d.callback(bytes(self._stdout))
            else:
                pending.append((needle, d))
        self._output_waiters = pending
