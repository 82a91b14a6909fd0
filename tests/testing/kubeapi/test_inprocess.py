"""The server started in-process, with TLS: a client verifying the written CA reaches it."""

from __future__ import annotations

import json
import os

import treq
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseNeverReceived
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from conch_container.testing.kubeapi import KubeAPIServer
from tests.docker_support import docker_client


@implementer(IPolicyForHTTPS)
class _TrustCA:
    def __init__(self, ca_file: str) -> None:
        with open(ca_file, "rb") as f:
            self._ca = Certificate.loadPEM(f.read())

    def creatorForNetloc(self, hostname: bytes, port: int) -> object:
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._ca)


class InProcessTests(TestCase):
    async def test_tls_with_written_ca(self) -> None:
        """start() gives an https URL; the CA in tls_dir verifies it; a pod list needs the token."""
        docker_client()
        tls_dir = self.mktemp()
        server = KubeAPIServer(reactor, "in-process-token", tls_dir=tls_dir)
        url = await server.start()
        self.addCleanup(lambda: Deferred.fromCoroutine(server.stop()))
        self.assertTrue(url.startswith("https://127.0.0.1:"))
        self.assertEqual(server.ca_file, os.path.join(tls_dir, "ca.crt"))
        assert server.ca_file is not None
        agent = Agent(reactor, contextFactory=_TrustCA(server.ca_file))
        client = treq.client.HTTPClient(agent)
        answer = await client.get(url + "/api/v1/namespaces/default/pods")
        self.assertEqual(answer.code, 401)
        self.assertEqual(json.loads(await answer.content())["reason"], "Unauthorized")
        answer = await client.get(
            url + "/api/v1/namespaces/default/pods",
            headers={"Authorization": "Bearer in-process-token"},
        )
        self.assertEqual(answer.code, 200)
        self.assertEqual(json.loads(await answer.content())["kind"], "PodList")
        # The default policy, which does not know the CA, refuses the certificate.
        untrusting = treq.client.HTTPClient(
            Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS())
        )
        with self.assertRaises(ResponseNeverReceived) as refused:
            await untrusting.get(url + "/version")
        self.assertTrue(refused.exception.reasons[0].check(SSL.Error))
