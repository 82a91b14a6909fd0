"""HTTPServerService over real loopback sockets: listen, TLS, mutual TLS, failures, stop."""

from __future__ import annotations

import socket
from typing import Any

from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.resource import Resource

from conch_container import messages
from conch_container.config.http import HTTPServerConfig
from conch_container.errors import ContainerSSHError
from conch_container.httpserver import HTTPServerService, TLSConfigError
from conch_container.webhook.tls import TLSSettings
from tests.httpserver.support import get
from tests.webhook.pki import issue, make_ca
from tests.webhook.support import capturing_logger, with_code

#: What the client sees when the server ends the connection during or after the handshake.
NO_ANSWER = (ResponseNeverReceived, ResponseFailed)


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


class ServiceTestCase(TestCase):
    def setUp(self) -> None:
        self.log, self.events = capturing_logger()

    def make(self, **config: Any) -> HTTPServerService:
        config.setdefault("listen", "127.0.0.1:0")
        return HTTPServerService(
            "test",
            HTTPServerConfig(**config),
            Hello(),
            log=self.log,
            available=messages.HEALTH_AVAILABLE,
            reactor=reactor,
        )

    async def serve(self, **config: Any) -> HTTPServerService:
        service = self.make(**config)
        await service.startService()
        self.addCleanup(service.stopService)
        return service


class PlainHTTPTests(ServiceTestCase):
    async def test_serves_and_logs_the_bound_address(self) -> None:
        """It answers over HTTP and logs the code it was given with the bound address."""
        service = await self.serve()
        self.assertIsNotNone(service.port)
        self.assertFalse(service.tls)
        status, body = await get(f"http://127.0.0.1:{service.port}/")
        self.assertEqual((status, body), (200, b"hello"))
        [event] = with_code(self.events, "HEALTH_AVAILABLE")
        self.assertEqual(event["listen"], f"127.0.0.1:{service.port}")

    async def test_ipv6_listen_address(self) -> None:
        """An IPv6 address in brackets is listened on, and reported in brackets."""
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            service = await self.serve(listen="[::1]:0")
        except ContainerSSHError:
            self.skipTest("::1 is not configured here")
        self.assertEqual(service.address, f"[::1]:{service.port}")
        with socket.create_connection(("::1", service.port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            answer: Deferred[bytes] = _in_thread(lambda: client.recv(1024))
            self.assertIn(b" 200 OK", (await answer).split(b"\r\n")[0])

    async def test_listen_failure(self) -> None:
        """A port in use fails the start with HTTP_LISTEN_FAILED naming the address."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
            service = self.make(listen=listen)
            with self.assertRaises(ContainerSSHError) as caught:
                await service.startService()
        self.assertEqual(caught.exception.code, messages.HTTP_LISTEN_FAILED)
        [event] = with_code(self.events, "HTTP_LISTEN_FAILED")
        self.assertEqual(event["listen"], listen)
        self.assertEqual(with_code(self.events, "HEALTH_AVAILABLE"), [])
        await service.stopService()

    async def test_stop_before_start_and_twice(self) -> None:
        """Stopping a service that never started, or stopping again, does nothing and fails not."""
        service = self.make()
        await service.stopService()
        await service.startService()
        await service.stopService()
        await service.stopService()
        self.assertIsNone(service.port)

    async def test_stop_closes_open_connections(self) -> None:
        """Stopping closes the socket and the idle keep-alive connections."""
        service = await self.serve()
        port = service.port
        assert port is not None
        client = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(client.close)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await _until(lambda: service.site.channels and not _idle(service))
        await service.stopService()
        self.assertEqual(service.site.channels, set())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _idle(service: HTTPServerService) -> bool:
    return any(channel.requests for channel in service.site.channels)


async def _until(condition: Any) -> None:
    from twisted.internet.task import deferLater

    for _ in range(100):
        if condition():
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("condition not met within 5 s")


class TLSTests(ServiceTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ca = make_ca()
        self.server = issue(self.ca, "localhost", dns=("localhost",), ips=("127.0.0.1",))

    async def test_https(self) -> None:
        """With cert and key it speaks TLS, verifiable against the issuing CA."""
        service = await self.serve(cert=self.server.cert_pem, key=self.server.key_pem)
        self.assertTrue(service.tls)
        trusting = TLSSettings(cacert=self.ca.cert_pem)
        status, body = await get(f"https://127.0.0.1:{service.port}/", settings=trusting)
        self.assertEqual((status, body), (200, b"hello"))

    async def test_plain_http_to_tls_port_fails(self) -> None:
        """A plain-HTTP request to the TLS port gets no answer."""
        service = await self.serve(cert=self.server.cert_pem, key=self.server.key_pem)
        with self.assertRaises(NO_ANSWER):
            await get(f"http://127.0.0.1:{service.port}/")

    async def test_tls_version_minimum(self) -> None:
        """tlsVersion 1.3 on the server refuses a TLS 1.2 client."""
        service = await self.serve(
            cert=self.server.cert_pem, key=self.server.key_pem, tls_version="1.3"
        )
        old = TLSSettings(cacert=self.ca.cert_pem, tls_version="1.2")
        status, _ = await get(f"https://127.0.0.1:{service.port}/", settings=old)
        self.assertEqual(status, 200)  # a client that also speaks 1.3 gets through
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
        with socket.create_connection(("127.0.0.1", service.port)) as raw:
            connection = SSL.Connection(context, raw)
            connection.set_connect_state()
            handshake: Deferred[None] = _in_thread(connection.do_handshake)
            with self.assertRaises(SSL.Error):
                await handshake

    async def test_mutual_tls(self) -> None:
        """With clientcacert, a client certificate from that CA is required and accepted."""
        client_ca = make_ca("Client CA")
        service = await self.serve(
            cert=self.server.cert_pem,
            key=self.server.key_pem,
            clientcacert=client_ca.cert_pem,
        )
        url = f"https://127.0.0.1:{service.port}/"
        good = issue(client_ca, "probe", client=True)
        with_cert = TLSSettings(cacert=self.ca.cert_pem, cert=good.cert_pem, key=good.key_pem)
        self.assertEqual(await get(url, settings=with_cert), (200, b"hello"))
        with self.assertRaises(NO_ANSWER):
            await get(url, settings=TLSSettings(cacert=self.ca.cert_pem))
        stranger = issue(make_ca("Other CA"), "stranger", client=True)
        wrong = TLSSettings(cacert=self.ca.cert_pem, cert=stranger.cert_pem, key=stranger.key_pem)
        with self.assertRaises(NO_ANSWER):
            await get(url, settings=wrong)

    def test_bad_tls_options_fail_at_construction(self) -> None:
        """Only a cert, or a key that does not match, is refused before anything listens."""
        other = issue(self.ca, "other")
        for config in (
            HTTPServerConfig(cert=self.server.cert_pem),
            HTTPServerConfig(cert=self.server.cert_pem, key=other.key_pem),
            HTTPServerConfig(cert="not pem", key=self.server.key_pem),
        ):
            with self.assertRaises(TLSConfigError):
                HTTPServerService(
                    "test",
                    config,
                    Hello(),
                    log=self.log,
                    available=messages.HEALTH_AVAILABLE,
                    reactor=reactor,
                )


def _in_thread(call: Any) -> Deferred[Any]:
    from twisted.internet.threads import deferToThread

    return deferToThread(call)
