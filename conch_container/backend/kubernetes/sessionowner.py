"""What every Kubernetes connection does with its session channels, whatever the mode.

A connection refuses new sessions once it is closing
(``KUBERNETES_POD_SHUTTING_DOWN``), and closes once: every session is shut
down, then the mode's own clean-up runs (:meth:`SessionOwner._after_sessions`),
and the backend is told (``on_closed``) whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, DeferredList

from conch_container import messages
from conch_container.backend.programsession import ProgramSession
from conch_container.deferreds import Once
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log.logger import CodeLogger

S = TypeVar("S", bound=ProgramSession)


class SessionOwner(Generic[S]):
    """The session channels of one connection.

    :param log: the connection's logger.
    :param on_closed: called with the connection once it is closed.
    """

    #: Why a session is refused while the connection closes (for the log).
    _closing_explanation = "the connection is being closed"
    #: Whether closing kills the programs still running (when their container
    #: outlives the connection, the end of a stream does not end its program).
    _kill_on_close = False

    def __init__(self, log: CodeLogger, on_closed: Callable[[Any], object]) -> None:
        self._log = log
        self._on_closed = on_closed
        self._sessions: set[S] = set()
        self._closing: Once[None] | None = None

    def _refuse_if_closing(self, channel_id: object) -> None:
        if self._closing is not None:
            error = ContainerSSHError(
                messages.KUBERNETES_POD_SHUTTING_DOWN,
                GENERIC_USER_MESSAGE,
                self._closing_explanation,
                channelId=channel_id,
            )
            error.log(self._log)
            raise error

    def _track(self, session: S) -> S:
        self._sessions.add(session)
        return session

    def close(self) -> Deferred[None]:
        """End every session, then the mode's own clean-up; idempotent."""
        if self._closing is None:
            once: Once[None] = Once()
            self._closing = once
            Deferred.fromCoroutine(self._close()).addBoth(once.fire)
        return self._closing.wait()

    async def _close(self) -> None:
        try:
            await DeferredList(
                [s.shutdown(kill=self._kill_on_close) for s in list(self._sessions)],
                consumeErrors=True,
            )
            await self._after_sessions()
        finally:
            self._on_closed(self)

    async def _after_sessions(self) -> None:
        """What the connection releases once its sessions are closed."""
