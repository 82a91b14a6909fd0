"""Returning to the same container by key, through the real OpenSSH client.

The authentication webhook gives alice's and bob's logins the same container
key in their metadata. alice's second connection lands in the container her
first one used (it sees the file the first wrote); bob, with the same key,
never does; the container goes ``keepAlive`` after the last connection. The
same holds for a pod of the Kubernetes backend (the test API server).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater

from conch_container.testing.webhook import WebhookUser
from tests.integration.gateway import GatewayTestCase, public_line, reactor
from tests.integration.test_kubernetes import KubernetesGatewayCase

KEY = {"containerKey": "job-42"}


class ContainerKeyTests(GatewayTestCase):
    timeout = 120
    config_overrides = {
        "session": {"containerKey": {"metadata": "containerKey"}, "keepAlive": "3s"}
    }

    def setUp(self) -> Any:
        d = super().setUp()

        def users(_: object) -> None:
            key = [public_line(self.client_pem)]
            self.webhook.users["alice"] = WebhookUser(authorized_keys=key, metadata=KEY)
            self.webhook.users["bob"] = WebhookUser(authorized_keys=key, metadata=KEY)

        return d.addCallback(users)

    async def test_second_connection_sees_the_first_ones_file(self) -> None:
        """A file written by the first connection is there for the second."""
        out, err, code = await self.ssh("echo from-the-first > /tmp/mine && hostname")
        self.assertEqual(code, 0, err)
        first_host = out
        out, err, code = await self.ssh("cat /tmp/mine; hostname")
        self.assertEqual((out, code), (b"from-the-first\n" + first_host, 0), err)
        self.assertEqual(self.logged_codes().count("CONTAINER_KEY_JOINED"), 1)
        self.assertEqual(self.logged_codes().count("DOCKER_CONTAINER_CREATE"), 1)
        # Each connection's programs are logged under that connection, in one container.
        execs = [r.details for r in self.log_records if r.code == "DOCKER_EXEC"]
        self.assertEqual(len({e["connectionId"] for e in execs}), 2)
        self.assertEqual(len({e["containerId"] for e in execs}), 1)

    async def test_another_user_with_the_same_key_does_not(self) -> None:
        """bob's key is alice's, but he gets a container of his own."""
        out, err, code = await self.ssh("echo alice-only > /tmp/mine")
        self.assertEqual(code, 0, err)
        out, err, code = await self.ssh("cat /tmp/mine", user="bob")
        self.assertEqual(out, b"")
        self.assertNotEqual(code, 0)
        self.assertNotIn("CONTAINER_KEY_JOINED", self.logged_codes())
        self.assertEqual(len(await self.own_container_ids()), 2)

    async def test_removed_after_keep_alive(self) -> None:
        """The container outlives its connection by keepAlive, then is removed."""
        _out, err, code = await self.ssh("true")
        self.assertEqual(code, 0, err)
        for _ in range(300):
            if "CONTAINER_KEY_KEPT" in self.logged_codes():
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertIn("CONTAINER_KEY_KEPT", self.logged_codes())
        self.assertEqual(len(await self.own_container_ids()), 1)
        for _ in range(300):
            if not await self.own_container_ids():
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(await self.own_container_ids(), [])
        self.assertIn("CONTAINER_KEY_EXPIRED", self.logged_codes())


class KubernetesContainerKeyTests(KubernetesGatewayCase):
    """The same on the Kubernetes backend: the key shares a pod."""

    timeout = 120
    config_overrides = ContainerKeyTests.config_overrides

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.webhook.users["alice"] = WebhookUser(
            authorized_keys=[public_line(self.client_pem)], metadata=KEY
        )

    async def test_second_connection_sees_the_first_ones_file(self) -> None:
        """A file written in the pod by the first connection is there for the second;
        the pod is deleted after keepAlive."""
        _out, err, code = await self.ssh("echo in-the-pod > /tmp/mine")
        self.assertEqual(code, 0, err)
        out, err, code = await self.ssh("cat /tmp/mine")
        self.assertEqual((out, code), (b"in-the-pod\n", 0), err)
        self.assertEqual(self.logged_codes().count("CONTAINER_KEY_JOINED"), 1)
        self.assertEqual(self.logged_codes().count("KUBERNETES_POD_CREATE"), 1)
        for _ in range(300):
            if "CONTAINER_KEY_EXPIRED" in self.logged_codes() and not await self.own_pods():
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(await self.own_pods(), [])


class ClientVariableKeyTests(GatewayTestCase):
    """The key is a variable the client sends (``ssh -o SetEnv=CI_JOB_ID=...``)."""

    timeout = 120
    config_overrides = {
        "session": {"containerKey": {"clientEnvironment": "CI_JOB_ID"}, "keepAlive": "30s"}
    }

    async def job(self, job_id: str | None, command: str) -> tuple[bytes, bytes, int]:
        options = () if job_id is None else ("-o", f"SetEnv=CI_JOB_ID={job_id}")
        return await self.ssh(command, *options)

    async def test_each_command_of_a_job_in_one_container(self) -> None:
        """Commands of one job, each on its own connection, share a container; another
        job, or a connection without the variable, does not."""
        _out, err, code = await self.job("4711", "echo built > /tmp/artifact")
        self.assertEqual(code, 0, err)
        out, err, code = await self.job("4711", "cat /tmp/artifact")
        self.assertEqual((out, code), (b"built\n", 0), err)
        out, _err, code = await self.job("4712", "cat /tmp/artifact")
        self.assertNotEqual(code, 0)
        out, _err, code = await self.job(None, "cat /tmp/artifact")
        self.assertNotEqual(code, 0)
        self.assertIn("CONTAINER_KEY_ABSENT", self.logged_codes())
        self.assertEqual(self.logged_codes().count("CONTAINER_KEY_JOINED"), 1)
        self.assertEqual(self.logged_codes().count("DOCKER_CONTAINER_CREATE"), 3)
