"""``kuberun.connection.insecure`` (with ``allowInsecure``) skips verifying the API server.

The translated ``insecure_skip_tls_verify`` must reach both ways the backend
talks to the API server: the control calls (creating the pod, through the
official client) and the exec streams (WebSocket on the reactor). The test
API server serves TLS with a certificate of its own CA, which the
configuration does not name: without the setting every call is refused.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase
from urllib3.exceptions import InsecureRequestWarning

from conch_container.backend.kubernetes.backend import KubernetesBackend
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.config import parse_config
from conch_container.interfaces import ExitStatus, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.testing.conformance import CollectingIO
from conch_container.testing.kubeapi import KubeAPIServer
from tests.backend.helpers import make_context, new_instance_id
from tests.backend.kubernetes.test_conformance import TOKEN, kubernetes_app_config
from tests.docker_support import docker_client


def translated_connection(url: str, **connection: Any) -> Any:
    """The ``kubernetes.connection`` a kuberun section with ``connection`` translates to."""
    document = {
        "backend": "kuberun",
        "kuberun": {"connection": {"host": url, "bearerToken": TOKEN, **connection}},
    }
    return parse_config(document).kubernetes.connection


class InsecureTLSTests(TestCase):
    timeout = 120

    async def setUp(self) -> None:
        docker_client()  # skips without a Docker engine
        self.server = KubeAPIServer(reactor, TOKEN, tls_dir=self.mktemp())
        self.url = await self.server.start()
        self.assertTrue(self.url.startswith("https://"), self.url)
        self.addCleanup(lambda: Deferred.fromCoroutine(self.server.stop()))
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests.backend.kubernetes.insecure", observer=self.events)

    def app_config(self, **connection: Any) -> Any:
        config = kubernetes_app_config(self.url)
        kubernetes = attrs.evolve(
            config.kubernetes, connection=translated_connection(self.url, **connection)
        )
        return attrs.evolve(config, kubernetes=kubernetes)

    def make_backend(self) -> KubernetesBackend:
        backend = KubernetesBackend(reactor, self.log, instance_id=new_instance_id())
        backend.start()
        self.addCleanup(backend.stop)
        return backend

    async def test_insecure_control_calls_and_streams(self) -> None:
        """With insecure and allowInsecure: the pod is made and a program runs in it."""
        config = self.app_config(insecure=True, allowInsecure=True)
        self.assertTrue(config.kubernetes.connection.insecure_skip_tls_verify)
        connection = await self.make_backend().connect(make_context(config, self.log))
        self.addCleanup(connection.close)
        session = connection.open_session(0)
        io = CollectingIO()
        await session.start(ProgramRequest("exec", "echo through-tls"), io)
        self.assertEqual(await io.wait_exit(), ExitStatus(code=0))
        self.assertEqual(bytes(io.stdout_data), b"through-tls\n")
        # The risk was logged at load (KUBERUN_INSECURE), not again per request.
        insecure = [w for w in self.flushWarnings() if w["category"] is InsecureRequestWarning]
        self.assertEqual(insecure, [])

    async def test_verified_by_default(self) -> None:
        """Without insecure the unknown CA is refused at once, not retried: no pod is made."""
        config = self.app_config(allowInsecure=True)
        with self.assertRaises(KubernetesError) as raised:
            await self.make_backend().connect(make_context(config, self.log))
        self.assertEqual(raised.exception.code.code, "KUBERNETES_POD_CREATE_FAILED")
        self.assertIn("certificate", raised.exception.explanation.lower())
        self.assertTrue(raised.exception.certificate_refused)
        creates = [e for e in self.events if e["code"] == "KUBERNETES_POD_CREATE"]
        self.assertEqual(len(creates), 1)
