"""A key the client sends: the container chosen when the connection first needs one."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from conch_container.backend.latekey import LateKeyConnection
from conch_container.backend.shared import SharedConnection, SharedContainers
from conch_container.config import AppConfig
from conch_container.config.session import ContainerKeyConfig
from conch_container.interfaces import ConnectionContext
from conch_container.metadata import ConnectionMetadata
from tests.ssh.harness import collecting_log

FROM_CLIENT = ContainerKeyConfig(client_environment="CI_JOB_ID")


class RealSession:
    """A backend session that records what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def set_env(self, name: str, value: str) -> None:
        self.calls.append(("env", name, value))

    def set_pty(self, pty: Any) -> None:
        self.calls.append(("pty", pty))

    def start(self, program: Any, io: Any) -> Deferred[None]:
        self.calls.append(("start", program))
        return succeed(None)

    def close(self) -> Deferred[None]:
        self.calls.append(("close",))
        return succeed(None)


class RealListener:
    bound_port = 6010

    def __init__(self) -> None:
        self.started = False

    def start(self) -> Deferred[int]:
        self.started = True
        return succeed(self.bound_port)

    def close(self) -> Deferred[None]:
        return succeed(None)


class RealConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.sessions: list[RealSession] = []
        self.closed = 0

    def open_session(self, channel_id: object) -> RealSession:
        session = RealSession()
        self.sessions.append(session)
        return session

    def open_listener(self, request: Any, on_connection: Any) -> RealListener:
        return RealListener()

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)


class LateKeyTests(TestCase):
    def setUp(self) -> None:
        self.registry = SharedContainers(Clock())
        self.events: list[dict[str, Any]] = []
        self.made: list[RealConnection] = []

    def connect(self, context: ConnectionContext) -> Deferred[RealConnection]:
        connection = RealConnection(len(self.made))
        self.made.append(connection)
        return succeed(connection)

    def context(self, user: str = "alice") -> ConnectionContext:
        config = AppConfig()
        config = attrs.evolve(
            config, session=attrs.evolve(config.session, container_key=FROM_CLIENT)
        )
        metadata = ConnectionMetadata(
            connection_id="c" * 32,
            remote_address="192.0.2.1:40000",
            username=user,
            authenticated_username=user,
        )
        return ConnectionContext(metadata=metadata, config=config, log=collecting_log(self.events))

    async def login(self, user: str = "alice") -> LateKeyConnection:
        connection = await self.registry.connect("docker", self.connect, self.context(user))
        self.assertIsInstance(connection, LateKeyConnection)
        return connection

    async def start_program(self, connection: Any, env: dict[str, str]) -> RealSession:
        session = connection.open_session(0)
        session.set_pty("xterm")
        for name, value in env.items():
            session.set_env(name, value)
        await session.start("program", None)
        return session._real  # type: ignore[no-any-return]

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    async def test_nothing_made_at_login(self) -> None:
        """The login itself makes no container; closing before any program makes none."""
        connection = await self.login()
        self.assertEqual(self.made, [])
        await connection.close()
        self.assertEqual(self.made, [])

    async def test_key_from_the_first_program(self) -> None:
        """The first program's variable is the key: a second connection with it joins."""
        first = await self.login()
        real = await self.start_program(first, {"CI_JOB_ID": "7", "OTHER": "x"})
        self.assertEqual(len(self.made), 1)
        # What came before the start reached the real session, in order.
        self.assertEqual(
            real.calls,
            [
                ("pty", "xterm"),
                ("env", "CI_JOB_ID", "7"),
                ("env", "OTHER", "x"),
                ("start", "program"),
            ],
        )
        second = await self.login()
        await self.start_program(second, {"CI_JOB_ID": "7"})
        self.assertEqual(len(self.made), 1)
        self.assertEqual(len(self.made[0].sessions), 2)
        self.assertIn("CONTAINER_KEY_JOINED", self.codes())
        chosen = await second.resolve(None, "test")
        self.assertIsInstance(chosen, SharedConnection)

    async def test_other_user_same_variable(self) -> None:
        """Another user sending the same value gets a container of their own."""
        await self.start_program(await self.login("alice"), {"CI_JOB_ID": "7"})
        await self.start_program(await self.login("bob"), {"CI_JOB_ID": "7"})
        self.assertEqual(len(self.made), 2)

    async def test_no_variable_own_container(self) -> None:
        """A first program without the variable: a container of the connection's own,
        used by its later programs too, whatever they send."""
        connection = await self.login()
        await self.start_program(connection, {})
        self.assertIn("CONTAINER_KEY_ABSENT", self.codes())
        await self.start_program(connection, {"CI_JOB_ID": "7"})
        self.assertEqual(len(self.made), 1)
        self.assertEqual(len(self.made[0].sessions), 2)
        await connection.close()
        self.assertEqual(self.made[0].closed, 1)

    async def test_listener_before_any_program(self) -> None:
        """An agent or X11 socket needed before the variables: no key, the connection's own."""
        connection = await self.login()
        listener = connection.open_listener(attrs.make_class("R", ["kind"])(None), None)
        self.assertEqual(await listener.start(), 6010)
        self.assertEqual(listener.bound_port, 6010)
        self.assertIn("CONTAINER_KEY_ABSENT", self.codes())
        await self.start_program(connection, {"CI_JOB_ID": "7"})
        self.assertEqual(len(self.made), 1)
        self.assertNotIn("CONTAINER_KEY_NEW", self.codes())

    async def test_concurrent_first_programs_choose_once(self) -> None:
        """Two channels starting at once share the one choice."""
        connection = await self.login()
        one = connection.open_session(0)
        two = connection.open_session(1)
        one.set_env("CI_JOB_ID", "9")
        await Deferred.fromCoroutine(_both(one.start("a", None), two.start("b", None)))
        self.assertEqual(len(self.made), 1)
        self.assertEqual(len(self.made[0].sessions), 2)

    async def test_session_closed_before_start(self) -> None:
        """A channel closed before its program started closes nothing in the backend."""
        connection = await self.login()
        session = connection.open_session(0)
        await session.close()
        self.assertEqual(self.made, [])


async def _both(a: Deferred[Any], b: Deferred[Any]) -> None:
    await a
    await b
