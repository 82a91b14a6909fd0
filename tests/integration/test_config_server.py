"""The configuration server end to end: the real OpenSSH client, real containers.

A second webhook server on loopback answers as the configuration server: it
gives alice another image (a second tag of the guest image) and environment,
and bob a security policy that forbids commands. When it is down, slow,
failing or answering nonsense, the login is refused cleanly, with its code,
and no container is created.
"""

from __future__ import annotations

from typing import Any

import docker
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from conch_container.testing.webhook import (
    DOWN,
    GARBAGE,
    HANG,
    AuthWebhookResource,
    WebhookUser,
    config_answer,
    listen_tcp,
    slow,
    status,
)
from conch_container.webhook import configserver
from tests.docker_support import GUEST_IMAGE, docker_client
from tests.integration.gateway import GatewayTestCase, public_line, reactor
from tests.integration.processes import until

#: A second name for the guest image, which only alice's configuration uses.
ALICE_IMAGE = "conch-container/guest:config-server-test"
#: The budget the refusal tests run with, instead of ContainerSSH's 60 seconds.
SHORT_BUDGET = 3.0


def remove_tag(client: Any, image: str) -> None:
    """Untag ``image``; a tag already gone is fine (the engine may report a tag it
    just untagged for another image reference as missing)."""
    try:
        client.remove_image(image)
    except docker.errors.ImageNotFound:
        pass


class ConfigServerTestCase(GatewayTestCase):
    """A gateway whose ``configserver.url`` points at a test configuration server."""

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.config_server = AuthWebhookResource(
            {
                "alice": WebhookUser(
                    config={
                        "docker": {
                            "execution": {
                                "container": {"image": ALICE_IMAGE, "env": ["FLAVOUR=special"]}
                            }
                        }
                    },
                    config_environment={"FROM_CONFIG": "yes"},
                ),
                "bob": WebhookUser(config={"security": {"command": {"mode": "disable"}}}),
                # Durations as strings: JSON's integer nanoseconds work too.
                "dave": WebhookUser(
                    config={"session": {"maxSessionDuration": "2s", "warning": "1s", "grace": "1s"}}
                ),
            },
            clock=reactor,
        )
        self.config_port, url = listen_tcp(reactor, self.config_server)
        self.config_url = f"{url}/config"
        self.addCleanup(self.config_port.stopListening)
        self.addCleanup(self.config_server.release)
        return Deferred.fromCoroutine(self._set_up())

    async def _set_up(self) -> None:
        client = docker_client()
        repository, _, tag = ALICE_IMAGE.rpartition(":")
        await deferToThread(client.tag, GUEST_IMAGE, repository, tag)
        self.addCleanup(deferToThread, remove_tag, client, ALICE_IMAGE)
        await super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["configserver"] = {"url": self.config_url, "timeout": "10s"}
        return data

    def add_user(self, name: str) -> None:
        self.webhook.users[name] = WebhookUser(authorized_keys=[public_line(self.client_pem)])

    def records(self, code: str) -> list[Any]:
        return [r for r in self.log_records if r.code == code]


class PerUserConfigTests(ConfigServerTestCase):
    async def test_image_and_environment_per_user(self) -> None:
        """alice's container is made from her image, with her variables."""
        out, err, code = await self.ssh('echo "$FLAVOUR $FROM_CONFIG"')
        self.assertEqual((out, code), (b"special yes\n", 0), err)
        [created] = self.records("DOCKER_CONTAINER_CREATE")
        self.assertIn("config-server-test", repr(created))
        [request] = self.config_server.bodies("config")
        self.assertEqual(request["authenticatedUsername"], "alice")
        self.assertIn("CONFIG_RESPONSE", self.logged_codes())

    async def test_static_config_for_others(self) -> None:
        """A user the server has nothing for gets the static configuration."""
        self.add_user("carol")
        out, err, code = await self.ssh('echo "${FLAVOUR-none}"', user="carol")
        self.assertEqual((out, code), (b"none\n", 0), err)
        [created] = self.records("DOCKER_CONTAINER_CREATE")
        self.assertNotIn("config-server-test", repr(created))

    async def test_security_policy_per_user(self) -> None:
        """bob's policy forbids commands: his fails with SECURITY_EXEC_REJECTED, alice's runs."""
        self.add_user("bob")
        out, err, code = await self.ssh("id", "-o", "LogLevel=INFO", user="bob")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(b"exec request failed", err)
        self.assertIn("SECURITY_EXEC_REJECTED", self.logged_codes())
        out, err, code = await self.ssh("echo fine")
        self.assertEqual((out, code), (b"fine\n", 0), err)

    async def test_time_limit_per_user(self) -> None:
        """dave's configuration gives him a 2 s session: his program is warned
        and ended; alice, on the static configuration, has no limit."""
        self.add_user("dave")
        _out, err, code = await self.ssh("sleep 30", user="dave")
        # Without the guest agent (these tests' configuration) the signal cannot
        # be delivered: the connection is closed when the grace period ends.
        self.assertEqual(code, 255, err)
        self.assertIn(b"time limit", err)
        self.assertIn("SSH_TIME_LIMIT_REACHED", self.logged_codes())
        out, err, code = await self.ssh("sleep 3; echo fine")
        self.assertEqual((out, code), (b"fine\n", 0), err)
        self.assertEqual(len(self.records("SSH_TIME_LIMIT_REACHED")), 1)


class ShutdownTests(ConfigServerTestCase):
    async def test_stop_does_not_wait_for_the_server(self) -> None:
        """A login waiting on a hanging server (60 s budget) does not hold up the stop."""
        self.config_server.inject(HANG)
        login = Deferred.fromCoroutine(self.ssh("echo never", "-o", "LogLevel=INFO"))
        await until(lambda: self.config_server.pending == 1, 30, "the configuration request")
        started = reactor.seconds()
        await self.root.stopService()
        # Far below the 60 s the configuration server's budget would allow.
        self.assertLess(reactor.seconds() - started, 20)
        # The call was cancelled, not left to run out its per-call timeout (10 s).
        await until(lambda: self.config_server.pending == 0, 5, "the request cancelled")
        out, err, code = await login
        self.assertEqual((out, code), (b"", 255), err)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.logged_codes())
        self.assertIn("SSH_DISCONNECTED", self.logged_codes())


class RefusalTests(ConfigServerTestCase):
    """Every failure refuses the login with its code, and no container is made."""

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.patch(configserver, "CONFIG_BUDGET", SHORT_BUDGET)
        return super().setUp()

    async def assertRefused(self, user_message: bytes, *codes: str) -> None:
        out, err, code = await self.ssh("echo should-not-run", "-o", "LogLevel=INFO")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn(user_message, err)
        logged = self.logged_codes()
        for expected in (*codes, "SSH_BACKEND_REJECTED_HANDSHAKE"):
            self.assertIn(expected, logged)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", logged)

    async def test_down(self) -> None:
        """A server answering 503 refuses the login: CONFIG_BACKEND_ERROR."""
        self.config_server.inject(DOWN)
        await self.assertRefused(
            configserver.CONFIG_UNAVAILABLE_USER_MESSAGE.encode(),
            "CONFIG_INVALID_STATUS_CODE",
            "CONFIG_BACKEND_ERROR",
        )

    async def test_port_closed(self) -> None:
        """Nothing listening refuses the login: CONFIG_BACKEND_ERROR."""
        await self.config_port.stopListening()
        await self.assertRefused(
            configserver.CONFIG_UNAVAILABLE_USER_MESSAGE.encode(), "CONFIG_BACKEND_ERROR"
        )

    async def test_slow_past_the_budget(self) -> None:
        """An answer later than the budget is not waited for."""
        self.config_server.inject(slow(SHORT_BUDGET + 5))
        started = reactor.seconds()
        await self.assertRefused(
            configserver.CONFIG_UNAVAILABLE_USER_MESSAGE.encode(), "CONFIG_BACKEND_ERROR"
        )
        self.assertLess(reactor.seconds() - started, SHORT_BUDGET + 5)

    async def test_status_500(self) -> None:
        """A 500 refuses the login: CONFIG_INVALID_STATUS_CODE, then CONFIG_BACKEND_ERROR."""
        self.config_server.inject(status(500))
        await self.assertRefused(
            configserver.CONFIG_UNAVAILABLE_USER_MESSAGE.encode(),
            "CONFIG_INVALID_STATUS_CODE",
            "CONFIG_BACKEND_ERROR",
        )

    async def test_garbage(self) -> None:
        """An answer that is not JSON refuses the login: CONFIG_BACKEND_ERROR."""
        self.config_server.inject(GARBAGE)
        await self.assertRefused(
            configserver.CONFIG_UNAVAILABLE_USER_MESSAGE.encode(), "CONFIG_BACKEND_ERROR"
        )

    async def test_invalid_config(self) -> None:
        """A configuration that does not validate refuses the login: BACKEND_CONFIG_ERROR."""
        self.config_server.inject(
            config_answer({"docker": {"execution": {"container": {"image": ""}}}})
        )
        await self.assertRefused(b"Failed to initialize SSH session.", "BACKEND_CONFIG_ERROR")
        [error] = self.records("BACKEND_CONFIG_ERROR")
        self.assertIn("docker.execution.container.image", repr(error))

    async def test_fixed_key(self) -> None:
        """A key the gateway cannot change per connection refuses the login, named."""
        self.config_server.inject(config_answer({"audit": {"enable": True}}))
        await self.assertRefused(b"Failed to initialize SSH session.", "BACKEND_CONFIG_ERROR")
        self.assertIn("audit.enable", repr(self.records("BACKEND_CONFIG_ERROR")))
