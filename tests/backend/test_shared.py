"""Keyed containers on their own, with fake backend connections and a controlled clock."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.containerkey import container_key, key_digest
from conch_container.backend.shared import MAX_KEPT_PER_USER, SharedContainers
from conch_container.config import AppConfig
from conch_container.config.session import ContainerKeyConfig
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import ConnectionContext
from conch_container.metadata import ConnectionMetadata, FileValue, MetadataValue
from conch_container.metrics.recorders import SharedCounts
from tests.ssh.harness import collecting_log

FROM_METADATA = ContainerKeyConfig(metadata="containerKey")


class FakeSession:
    def __init__(self) -> None:
        self.env: dict[str, str] = {}

    def set_env(self, name: str, value: str) -> None:
        self.env[name] = value


class FakeConnection:
    """A backend connection: counts its closes, may say it stopped."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = 0
        self.running = True
        self.files: list[dict[str, Any]] = []

    def open_session(self, channel_id: object) -> FakeSession:
        return FakeSession()

    def still_running(self) -> Deferred[bool]:
        return succeed(self.running)

    def write_files(self, files: dict[str, Any]) -> Deferred[None]:
        self.files.append(dict(files))
        return succeed(None)

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)


class SharedContainersTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.shared = SharedContainers(self.clock)
        self.events: list[dict[str, Any]] = []
        self.made: list[FakeConnection] = []
        self.pending: Deferred[None] | None = None

    def connect(self, context: ConnectionContext) -> Any:
        async def make() -> FakeConnection:
            if self.pending is not None:
                await self.pending
            connection = FakeConnection(len(self.made))
            self.made.append(connection)
            return connection

        return Deferred.fromCoroutine(make())

    def context(
        self,
        user: str = "alice",
        key: str | None = "job-1",
        *,
        keep_alive: float = 60.0,
        environment: dict[str, str] | None = None,
        source: ContainerKeyConfig = FROM_METADATA,
    ) -> ConnectionContext:
        config = AppConfig()
        config = attrs.evolve(
            config,
            session=attrs.evolve(config.session, container_key=source, keep_alive=keep_alive),
        )
        metadata = ConnectionMetadata(
            connection_id="c" * 32,
            remote_address="192.0.2.1:40000",
            username=user,
            authenticated_username=user,
            metadata={} if key is None else {"containerKey": MetadataValue(key)},
            environment={k: MetadataValue(v) for k, v in (environment or {}).items()},
        )
        return ConnectionContext(metadata=metadata, config=config, log=collecting_log(self.events))

    async def open(self, context: ConnectionContext) -> Any:
        return await self.shared.connect("docker", self.connect, context)

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    async def test_same_user_same_key_share(self) -> None:
        """The second connection joins the first's container; it gets its own environment."""
        first = await self.open(self.context())
        second = await self.open(self.context(environment={"MINE": "2"}))
        self.assertEqual(len(self.made), 1)
        self.assertIs(first.connection, second.connection)
        self.assertEqual(second.open_session(1).env, {"MINE": "2"})
        self.assertEqual(self.codes(), ["CONTAINER_KEY_NEW", "CONTAINER_KEY_JOINED"])
        self.assertNotIn("job-1", repr(self.events))
        self.assertEqual(self.events[0]["containerKey"], key_digest("job-1"))

    async def test_other_user_never_shares(self) -> None:
        """Another user with the same key gets a container of their own."""
        await self.open(self.context("alice"))
        await self.open(self.context("bob"))
        self.assertEqual(len(self.made), 2)

    async def test_no_key_no_sharing(self) -> None:
        """Connections without a key each get their own, untouched by the registry."""
        a = await self.open(self.context(key=None))
        b = await self.open(self.context(key=None))
        self.assertIsInstance(a, FakeConnection)
        self.assertIsNot(a, b)
        self.assertEqual(len(self.shared), 0)

    async def test_kept_for_keep_alive_then_removed(self) -> None:
        """After the last connection, the container stays keepAlive seconds, then goes;
        the counts follow (in use, then kept, then gone)."""
        first = await self.open(self.context(keep_alive=60.0))
        self.assertEqual(self.shared.counts, SharedCounts(in_use=1, kept=0))
        await first.close()
        self.assertEqual(self.shared.counts, SharedCounts(in_use=0, kept=1))
        self.assertEqual(self.made[0].closed, 0)
        self.assertIn("CONTAINER_KEY_KEPT", self.codes())
        self.clock.advance(59)
        self.assertEqual(self.made[0].closed, 0)
        self.clock.advance(1)
        self.assertEqual(self.made[0].closed, 1)
        self.assertIn("CONTAINER_KEY_EXPIRED", self.codes())
        self.assertEqual(self.shared.counts, SharedCounts())
        # The key now makes a new container.
        await self.open(self.context())
        self.assertEqual(len(self.made), 2)

    async def test_return_within_keep_alive(self) -> None:
        """A connection within keepAlive takes the container back; the timer stops."""
        first = await self.open(self.context())
        await first.close()
        self.clock.advance(30)
        again = await self.open(self.context())
        self.assertIs(again.connection, self.made[0])
        self.clock.advance(120)
        self.assertEqual(self.made[0].closed, 0)
        await again.close()
        await again.close()  # idempotent: released once
        self.clock.advance(60)
        self.assertEqual(self.made[0].closed, 1)

    async def test_unused_containers_per_user_bounded(self) -> None:
        """A user who connects with ever new keys keeps at most MAX_KEPT_PER_USER
        unused containers: the one unused the longest goes first; others' are untouched."""
        bob = await self.open(self.context("bob", key="b"))
        await bob.close()
        for n in range(MAX_KEPT_PER_USER + 2):
            connection = await self.open(self.context(key=f"job-{n}"))
            await connection.close()
            self.clock.advance(1)
        self.assertEqual([c.closed for c in self.made[1:3]], [1, 1])
        self.assertEqual({c.closed for c in self.made[3:]}, {0})
        self.assertEqual(self.made[0].closed, 0)
        self.assertEqual(self.shared.counts, SharedCounts(in_use=0, kept=MAX_KEPT_PER_USER + 1))
        self.assertEqual(self.codes().count("CONTAINER_KEY_EXPIRED"), 2)

    async def test_zero_keep_alive_removes_at_once(self) -> None:
        first = await self.open(self.context(keep_alive=0.0))
        await first.close()
        self.assertEqual(self.made[0].closed, 1)

    async def test_stopped_container_replaced(self) -> None:
        """A kept container that stopped is removed, and the key gets a new one."""
        first = await self.open(self.context())
        await first.close()
        self.made[0].running = False
        again = await self.open(self.context())
        self.assertIs(again.connection, self.made[1])
        self.assertEqual(self.made[0].closed, 1)
        self.assertIn("CONTAINER_KEY_STALE", self.codes())

    async def test_concurrent_logins_wait_for_one_container(self) -> None:
        """Two logins with the same key at once: one container, the second waits for it."""
        self.pending = Deferred()
        a = Deferred.fromCoroutine(self.open(self.context()))
        b = Deferred.fromCoroutine(self.open(self.context()))
        self.assertEqual(self.made, [])
        self.pending.callback(None)
        first, second = await a, await b
        self.assertEqual(len(self.made), 1)
        self.assertIs(first.connection, second.connection)

    async def test_failed_creation_lets_the_next_try(self) -> None:
        """A creation that fails fails its connection; a waiting one creates its own."""
        self.pending = Deferred()
        a = Deferred.fromCoroutine(self.open(self.context()))
        b = Deferred.fromCoroutine(self.open(self.context()))
        pending, self.pending = self.pending, None
        pending.errback(
            ContainerSSHError(messages.DOCKER_CONTAINER_CREATE_FAILED, GENERIC_USER_MESSAGE, "no")
        )
        with self.assertRaises(ContainerSSHError):
            await a
        second = await b
        self.assertIs(second.connection, self.made[0])

    async def test_files_written_for_joiners(self) -> None:
        """A joining connection's files are written into the shared container."""
        await self.open(self.context())
        context = self.context()
        context = attrs.evolve(
            context,
            metadata=attrs.evolve(context.metadata, files={"/tmp/f": FileValue(b"x")}),
        )
        await self.open(context)
        self.assertEqual(len(self.made[0].files), 1)

    async def test_key_from_environment(self) -> None:
        """A key may come from a variable of the connection's environment."""
        source = ContainerKeyConfig(environment="CI_JOB_ID")
        context = self.context(key=None, environment={"CI_JOB_ID": "77"}, source=source)
        self.assertEqual(container_key(context), "77")
        self.assertIsNone(container_key(self.context(key=None, source=source)))

    async def test_unusable_key_ignored(self) -> None:
        """An over-long or unprintable key is no key: logged, and a container of its own."""
        self.assertIsNone(container_key(self.context(key="x" * 257)))
        self.assertIsNone(container_key(self.context(key="a\nb")))
        self.assertEqual(self.codes(), ["CONTAINER_KEY_INVALID"] * 2)

    async def test_stop_removes_kept(self) -> None:
        """Stopping removes kept containers now; later releases remove theirs at once."""
        kept = await self.open(self.context("alice"))
        used = await self.open(self.context("bob"))
        await kept.close()
        await self.shared.stop()
        self.assertEqual(self.made[0].closed, 1)
        self.assertEqual(self.made[1].closed, 0)
        await used.close()
        self.assertEqual(self.made[1].closed, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
