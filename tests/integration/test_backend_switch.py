"""A configuration server switches one user to ``backend: kubernetes``; the others stay on Docker.

The real gateway (static ``backend: docker``) and OpenSSH client; a test
configuration server on loopback answers alice with the Kubernetes backend
against the test API server (which runs pods as containers of the local
Docker engine); carol gets the static configuration. Nothing is left behind:
neither container nor pod.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from conch_container.testing.kubeapi import KubeAPIServer
from conch_container.testing.webhook import AuthWebhookResource, WebhookUser, listen_tcp
from tests.integration.gateway import GatewayTestCase, public_line, reactor
from tests.integration.test_kubernetes import TOKEN, KubernetesGatewayCase

#: One second as a JSON duration (Go's time.Duration: nanoseconds).
SECOND = 1_000_000_000


class BackendSwitchTests(KubernetesGatewayCase):
    """Static Docker backend; alice's configuration sends her to Kubernetes."""

    async def setUp(self) -> None:  # type: ignore[override]
        self.server = KubeAPIServer(reactor, TOKEN, tls_dir=None)
        self.url = await self.server.start()
        # Added first, so the API server stops after the gateway.
        self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        self.config_server = AuthWebhookResource(
            {
                "alice": WebhookUser(config={"backend": "kubernetes", "kubernetes": self.answer()}),
                "dave": WebhookUser(config={"backend": "sshproxy"}),
            },
            clock=reactor,
        )
        self.config_port, url = listen_tcp(reactor, self.config_server)
        self.addCleanup(self.config_port.stopListening)
        self.addCleanup(self.config_server.release)
        self.config_url = f"{url}/config"
        await GatewayTestCase.setUp(self)

    def config_data(self) -> dict[str, Any]:
        data = GatewayTestCase.config_data(self)
        data["configserver"] = {"url": self.config_url, "timeout": "10s"}
        return data

    def answer(self) -> dict[str, Any]:
        """The Kubernetes section as a configuration server sends it (JSON durations in ns)."""
        section = self.kubernetes_section()
        section["timeouts"] = {"podStart": 30 * SECOND, "podStop": 30 * SECOND}
        return section

    def add_user(self, name: str) -> None:
        self.webhook.users[name] = WebhookUser(authorized_keys=[public_line(self.client_pem)])

    def refusals(self) -> list[Any]:
        """Why a login was refused (shown when one is not expected)."""
        wanted = ("BACKEND_CONFIG_ERROR", "SSH_BACKEND_REJECTED_HANDSHAKE")
        return [r for r in self.log_records if r.code in wanted]

    def codes_count(self, code: str) -> int:
        return self.logged_codes().count(code)

    async def test_one_user_on_kubernetes_the_other_on_docker(self) -> None:
        """alice runs in a pod, carol in a container; the Kubernetes backend starts once."""
        self.add_user("carol")
        out, err, code = await self.ssh("cat /proc/1/cmdline | tr '\\0' ' '; exit 4")
        self.assertEqual((out, code), (b"sleep 3600 ", 4), (err, self.refusals()))
        self.assertEqual(self.codes_count("KUBERNETES_POD_CREATE"), 1)
        self.assertEqual(self.codes_count("DOCKER_CONTAINER_CREATE"), 0)
        self.assertEqual(self.codes_count("BACKEND_STARTING"), 1)
        self.assertEqual(await self.own_pods_once_deleted(), [])

        out, err, code = await self.ssh("echo docker", user="carol")
        self.assertEqual((out, code), (b"docker\n", 0), err)
        self.assertEqual(self.codes_count("DOCKER_CONTAINER_CREATE"), 1)
        self.assertEqual(self.codes_count("KUBERNETES_POD_CREATE"), 1)

        out, err, code = await self.ssh("echo again")
        self.assertEqual((out, code), (b"again\n", 0), err)
        self.assertEqual(self.codes_count("KUBERNETES_POD_CREATE"), 2)
        self.assertEqual(self.codes_count("BACKEND_STARTING"), 1)
        self.assertEqual(await self.own_pods_once_deleted(), [])

    async def test_unavailable_backend_refused(self) -> None:
        """dave's configuration names sshproxy: his login is refused with the code; alice's runs."""
        self.add_user("dave")
        out, err, code = await self.ssh("echo never", "-o", "LogLevel=INFO", user="dave")
        self.assertEqual((out, code), (b"", 255), err)
        self.assertIn("BACKEND_CONFIG_ERROR", self.logged_codes())
        self.assertIn("SSH_BACKEND_REJECTED_HANDSHAKE", self.logged_codes())
        out, err, code = await self.ssh("echo fine")
        self.assertEqual((out, code), (b"fine\n", 0), err)
