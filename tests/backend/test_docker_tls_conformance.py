"""The Docker conformance suite against an engine reached over TCP with TLS.

Every engine call and every program stream (exec start, container attach)
goes to a second real engine (:mod:`tests.tls_engine`) that accepts only
clients with a certificate of its CA, in both of the backend's modes.
"""

from __future__ import annotations

from typing import Any

import docker
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from tests.backend import test_docker_conformance
from tests.backend.helpers import DockerBackendFixture, make_config, make_context, new_instance_id
from tests.tls_engine import TLSEngine, tls_engine
from tests.webhook.pki import issue, make_ca


class TLSEngineConformanceTests(test_docker_conformance.DockerConformanceTests):
    """The conformance cases in connection mode, over TLS."""

    mode = "connection"

    async def setUp(self) -> None:  # type: ignore[override]
        self.engine: TLSEngine = await tls_engine()
        self.client = docker.APIClient(base_url=self.engine.socket_url, version="auto", timeout=30)
        self.addCleanup(self.client.close)
        self.instance_id = new_instance_id()
        self.log = CodeLogger("tests.backend.docker.tls")
        self.addCleanup(self.assert_nothing_left)

    def make_context(self) -> ConnectionContext:
        config = make_config(connection=self.engine.connection, mode=self.mode)
        return make_context(config, self.log)


class TLSEngineSessionModeConformanceTests(TLSEngineConformanceTests):
    """The conformance cases in session mode, over TLS."""

    mode = "session"


class TLSRefusalTests(DockerBackendFixture, TestCase):
    """An engine whose certificate the configured CA did not sign is refused."""

    log_namespace = "tests.backend.docker.tls.refusal"

    async def test_engine_not_signed_by_the_ca(self) -> None:
        engine = await tls_engine()
        other_ca = make_ca("somebody else's CA")
        client = issue(other_ca, "client", client=True)
        connection: dict[str, Any] = {
            **engine.connection,
            "cacert": other_ca.cert_pem,
            "cert": client.cert_pem,
            "key": client.key_pem,
        }
        error = await self.connect_fails(
            connection=connection, timeouts={"containerStart": "3s", "http": "2s"}
        )
        self.assertIsInstance(error, ContainerSSHError)
        self.assertEqual(error.code, messages.DOCKER_CONNECTION_FAILED)
        self.assertNotIn("Traceback", error.user_message)
        reasons = [
            str(e.get("reason", ""))
            for e in self.events
            if e.get("code") == "DOCKER_CONNECTION_FAILED"
        ]
        self.assertTrue(any("CERTIFICATE_VERIFY_FAILED" in r for r in reasons), reasons)
