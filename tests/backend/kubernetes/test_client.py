"""KubernetesClient: its pool and per-connection clients, over plain HTTP and over TLS."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor, ssl
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.kubernetes.channels import V5
from conch_container.backend.kubernetes.client import KubernetesClient
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.config.kubernetes import KubernetesConfig, KubernetesConnectionConfig
from tests.backend.kubernetes.channelserver import ChannelServer, exit_status
from tests.backend.kubernetes.fakeapi import FakeAPIServer
from tests.backend.kubernetes.test_websocket import Recorder
from tests.webhook.pki import issue, make_ca

CA = make_ca("Kubernetes test CA")
SERVER = issue(CA, "apiserver", dns=("api.internal",))
CLIENT = issue(CA, "gateway", client=True)
OTHER_CA = make_ca("Someone else")


def server_tls() -> Any:
    """Server options that present SERVER and require a client certificate from CA."""
    own = ssl.PrivateCertificate.loadPEM(SERVER.cert_pem + SERVER.key_pem)
    return own.options(ssl.Certificate.loadPEM(CA.cert_pem))


def config(url: str, **connection: Any) -> KubernetesConfig:
    return KubernetesConfig(connection=KubernetesConnectionConfig(host=url, **connection))


class KubernetesClientTests(TestCase):
    def setUp(self) -> None:
        self.client = KubernetesClient(reactor, max_threads=2, environ={})
        self.client.start()
        self.addCleanup(self.client.stop)

    async def test_tls_with_client_certificate_and_server_name(self) -> None:
        """Control calls and streams both use the CA, the client certificate and serverName."""
        api = FakeAPIServer()
        api_url = api.listen(server_tls())
        self.addCleanup(api.stop)
        streams = ChannelServer()
        stream_url = streams.listen(server_tls())
        self.addCleanup(streams.stop)
        tls = {
            "cacert": CA.cert_pem,
            "cert": CLIENT.cert_pem,
            "key": CLIENT.key_pem,
            "server_name": "api.internal",
            "bearer_token": "tok",
        }
        cluster = await self.client.cluster_for(config(api_url, **tls))
        created = await cluster.pods.create_pod("ns", {"metadata": {"name": "p1"}, "spec": {}})
        self.assertEqual(created["metadata"]["name"], "p1")
        self.assertEqual(api.pods.requests[0][3]["authorization"], "Bearer tok")
        # The same settings, pointed at the stream server.
        stream_cluster = await self.client.cluster_for(config(stream_url, **tls))
        recorder = Recorder()
        stream = await stream_cluster.open_stream(
            "ns",
            "p1",
            "shell",
            ["true"],
            tty=False,
            stdout=recorder.on_stdout,
            stderr=recorder.on_stderr,
            events=recorder,
        )
        self.assertEqual(stream.subprotocol, V5)
        self.assertEqual(streams.request.headers["authorization"], "Bearer tok")
        streams.send_status(exit_status(0))
        streams.finish()
        await recorder.closed_d()
        assert stream.exit_status is not None
        self.assertEqual(stream.exit_status.exit_code, 0)

    async def test_wrong_ca_refused(self) -> None:
        """A server certificate the configured CA did not sign is refused by both kinds of call."""
        api = FakeAPIServer()
        url = api.listen(server_tls())
        self.addCleanup(api.stop)
        cluster = await self.client.cluster_for(
            config(
                url,
                cacert=OTHER_CA.cert_pem,
                cert=CLIENT.cert_pem,
                key=CLIENT.key_pem,
                server_name="api.internal",
            )
        )
        with self.assertRaises(KubernetesError) as caught:
            await cluster.pods.get_pod("ns", "p")
        self.assertEqual(caught.exception.code, messages.KUBERNETES_POD_WAIT_FAILED)
        self.assertEqual(api.pods.requests, [])
        with self.assertRaises(KubernetesError) as refused:
            await cluster.open_stream(
                "ns", "p", "shell", None, tty=True, stdout=len, stderr=len, events=Recorder()
            )
        self.assertEqual(refused.exception.code, messages.KUBERNETES_EXEC_FAILED)

    async def test_cached_per_connection_and_errors_not_cached(self) -> None:
        """The same connection gets the same client; a config error is raised and not kept."""
        first = await self.client.cluster_for(config("http://127.0.0.1:1"))
        again = await self.client.cluster_for(config("http://127.0.0.1:1"))
        self.assertIs(first, again)
        bad = config("http://127.0.0.1:1", path="/nope")
        for _ in range(2):
            with self.assertRaises(KubernetesError) as caught:
                await self.client.cluster_for(bad)
            self.assertEqual(caught.exception.code, messages.KUBERNETES_CONFIG_ERROR)
            self.assertIn("kubernetes.connection.path", caught.exception.explanation)

    async def test_stop_removes_tls_files(self) -> None:
        """Stopping closes the clients and removes the PEM files written for them."""
        cluster = await self.client.cluster_for(config("https://127.0.0.1:1", cacert=CA.cert_pem))
        tls_dir = cluster.cluster.tls_dir
        assert tls_dir is not None
        self.assertTrue(os.path.isdir(tls_dir))
        await self.client.stop()
        self.assertFalse(os.path.exists(tls_dir))
        with self.assertRaises(KubernetesError):
            await self.client.cluster_for(config("http://127.0.0.1:2"))
