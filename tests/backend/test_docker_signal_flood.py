"""A container cannot hold the Docker backend's pool threads through signal deliveries.

A user who is root in their container can replace the guest agent with a
program that never ends and writes a byte every few seconds. A signal is
delivered by running that program; had the delivery read its output in a
pool thread, the thread would be held for as long as the bytes keep coming
(the HTTP client's read timeout starts again with each one). These tests run
against the real engine, with the backend's real pool counting its work
(:mod:`tests.backend.countingpool`); the delivery's deadline runs on a
:class:`~twisted.internet.task.Clock` the test advances.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import task
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.docker.connectionmode.execsession import DockerExecSession
from conch_container.config.docker import AGENT_PATH
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ProgramRequest
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.countingpool import CountingThreadPool, counting_pools
from tests.backend.helpers import reactor
from tests.backend.test_docker_agent_integration import AgentFixture, thd_exec

#: Replaces the agent: never ends, writes a byte every two seconds.
DRIBBLER = "#!/bin/sh\n# dribbler\nwhile :; do printf .; sleep 2; done\n"
#: The signal deadline (on the test's clock).
SIGNAL_TIMEOUT = 30.0
#: How long (real time) the test waits for the engine to get somewhere at most.
PATIENCE = 30.0


class ClockedReactor:
    """The real reactor, except that time (``callLater``, ``seconds``) is a :class:`Clock`.

    Threads, ``callFromThread`` and adopted streams stay real; deadlines and
    poll delays wait until the test advances the clock.
    """

    def __init__(self, real: Any, clock: Clock) -> None:
        self._real = real
        self.clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *args, **kw)

    def seconds(self) -> float:
        return self.clock.seconds()

    def getDelayedCalls(self) -> Any:
        return self.clock.getDelayedCalls()


async def eventually(condition: Callable[[], Any], what: str) -> None:
    """Wait (real time, at most :data:`PATIENCE`) until ``condition()`` is true.

    ``condition`` may return a bool or something to await for one.
    """
    for _ in range(int(PATIENCE / 0.05)):
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await task.deferLater(reactor(), 0.05)
    raise AssertionError(f"never happened: {what}")


def replace_agent_command(script: str) -> list[str]:
    """Shell command that replaces the agent file (a new file moved over it, as root can)."""
    new = f"{AGENT_PATH}.new"
    replace = f'printf %s "$1" > {new} && chmod 755 {new} && mv {new} {AGENT_PATH}'
    return ["/bin/sh", "-c", replace, "sh", script]


class DribblingAgentTests(AgentFixture, TestCase):
    """The agent replaced by a program that never ends and writes a byte now and then."""

    def setUp(self) -> Any:
        self.pools = counting_pools(self)
        return super().setUp()

    @property
    def pool(self) -> CountingThreadPool:
        [pool] = self.pools
        return pool

    async def start_on_clock(self, connection: Any, clock: Clock) -> DockerExecSession:
        """A program in ``connection``'s container whose session keeps time on ``clock``."""
        session = DockerExecSession(
            reactor=ClockedReactor(reactor(), clock),
            engine=connection.engine,
            container_id=connection.container_id,
            docker_config=self.config(timeouts={"signal": f"{SIGNAL_TIMEOUT:g}s"}).docker,
            log=self.log,
            channel_id=1,
            agent=connection.agent,
        )
        # Dropping the stream ends it: a KILL through the replaced agent would never end.
        self.addCleanup(session.shutdown, kill=False)
        await session.start(ProgramRequest("exec", "/bin/sleep 100000"), RecordingSessionIO())
        await session.pid_known()
        return session

    async def dribbler_running(self, container_id: str, signal: str = "USR1") -> bool:
        """Whether the replaced agent runs in the container for ``signal``."""
        listing = await deferToThread(thd_exec, self.client, container_id, ["ps", "-o", "args"])
        return f"--signal {signal}".encode() in listing and b"--pid" in listing

    async def test_signal_ends_at_its_deadline_and_frees_the_thread(self) -> None:
        """The delivery fails at its deadline; no pool thread is left to the dribbling agent."""
        connection = await self.connect()
        clock = Clock()
        session = await self.start_on_clock(connection, clock)
        container_id = connection.container_id
        await deferToThread(thd_exec, self.client, container_id, replace_agent_command(DRIBBLER))

        signal = session.signal("USR1")
        await eventually(
            lambda: self.dribbler_running(container_id), "the replaced agent runs for the signal"
        )
        self.assertFalse(signal.called)

        clock.advance(SIGNAL_TIMEOUT)
        with self.assertRaises(ContainerSSHError) as caught:
            await signal
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_SIGNAL_FAILED)
        self.assertIn("timed out", caught.exception.explanation)

        await eventually(lambda: self.pool.outstanding() == 0, "the pool has no work left")
        self.assertEqual(self.pool.working, [])
        # The thread was freed while the program it ran still dribbles.
        self.assertTrue(await self.dribbler_running(container_id))
        # Nothing of the delivery is left waiting on the clock either.
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_closing_does_not_wait_for_the_agent(self) -> None:
        """Closing a channel starts the KILL and is done, though the replaced agent never ends."""
        connection = await self.connect()
        clock = Clock()
        session = await self.start_on_clock(connection, clock)
        container_id = connection.container_id
        await deferToThread(thd_exec, self.client, container_id, replace_agent_command(DRIBBLER))

        # The clock never moves: closing must not need a deadline to end.
        await session.close()
        await eventually(
            lambda: self.dribbler_running(container_id, "KILL"), "the KILL's agent runs"
        )
        await eventually(lambda: self.pool.outstanding() == 0, "the pool has no work left")
        self.assertEqual(self.pool.most("thd_exec_inspect"), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
