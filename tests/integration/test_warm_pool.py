"""The warm pool through the real OpenSSH client.

A gateway with ``docker.pool.size: 2``: a login lands in a container that was
ready before it connected, the pool refills, a burst of three times the pool
all succeeds, and after the gateway stops no container is left (the base
class checks the engine for the instance's label).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from tests.integration.gateway import GatewayTestCase, reactor

POOL_SIZE = 2


class WarmPoolTests(GatewayTestCase):
    timeout = 180
    config_overrides = {"docker": {"pool": {"size": POOL_SIZE}}}

    async def until_logged(self, code: str, count: int, timeout: float = 60) -> None:
        waited = 0.0
        while self.logged_codes().count(code) < count:
            if waited > timeout:
                self.fail(f"{code} logged {self.logged_codes().count(code)} times, not {count}")
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    async def test_login_takes_a_ready_container(self) -> None:
        """The login's container was ready before it: handed over, not created; the pool
        makes a replacement."""
        await self.until_logged("DOCKER_POOL_READY", POOL_SIZE)
        out, err, code = await self.ssh("echo hello from the pool")
        self.assertEqual((out, code), (b"hello from the pool\n", 0), err)
        records = [r for r in self.log_records if r.code == "DOCKER_POOL_HANDOVER"]
        self.assertEqual(len(records), 1)
        self.assertEqual(records[0].details.get("username"), "alice")
        await self.until_logged("DOCKER_POOL_READY", POOL_SIZE + 1)
        # The connection created nothing itself: every create was the pool's (the
        # first fill and the replacement).
        self.assertEqual(self.logged_codes().count("DOCKER_CONTAINER_CREATE"), POOL_SIZE + 1)

    async def test_burst_three_times_the_pool(self) -> None:
        """Six logins at once with two ready: all succeed; two are handed over, the others
        create their own containers."""
        await self.until_logged("DOCKER_POOL_READY", POOL_SIZE)
        results: list[Any] = await gatherResults(
            [Deferred.fromCoroutine(self.ssh(f"echo login {n}")) for n in range(3 * POOL_SIZE)]
        )
        for n, (out, err, code) in enumerate(results):
            self.assertEqual((out, code), (f"login {n}\n".encode(), 0), err)
        self.assertEqual(self.logged_codes().count("DOCKER_POOL_HANDOVER"), POOL_SIZE)
        self.assertEqual(self.logged_codes().count("DOCKER_POOL_EMPTY"), 2 * POOL_SIZE)
