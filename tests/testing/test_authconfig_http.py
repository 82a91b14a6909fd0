"""The test webhook server, served by the gateway's HTTP server and called by its client."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from conch_container import messages
from conch_container.metadata import AuthResult
from conch_container.testing.authconfig import (
    AuthConfigResource,
    parse_server_users,
    server_config,
    webhook_server_service,
)
from conch_container.testing.authconfig.resource import MAX_REQUEST_BODY
from conch_container.testing.authconfig.serve import LIMITS
from conch_container.webhook.client import WebhookClient
from conch_container.webhook.errors import WebhookConnectionError
from conch_container.webhook.protocol import (
    AUTHZ_PATH,
    PASSWORD_PATH,
    PUBLIC_KEY_PATH,
    authz_request,
    decode_auth_response,
    password_request,
    pending_metadata,
    public_key_request,
)
from tests.testing.authconfig_support import KEY, METADATA, OTHER_KEY, USERS_YAML
from tests.webhook.pki import Issued, issue, make_ca
from tests.webhook.support import ClientConfig, capturing_logger, with_code


class _ThreadRecordingPool(ThreadPool):
    """A real thread pool that notes which thread each piece of work ran in."""

    def __init__(self) -> None:
        super().__init__(minthreads=0, maxthreads=2, name="test-bcrypt")
        self.ran_in: list[threading.Thread] = []

    def callInThreadWithCallback(
        self, onResult: Any, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        def recorded(*a: Any, **kw: Any) -> Any:
            self.ran_in.append(threading.current_thread())
            return func(*a, **kw)

        super().callInThreadWithCallback(onResult, recorded, *args, **kwargs)


class RealHTTPTests(TestCase):
    def setUp(self) -> defer.Deferred[None]:
        self.pool = _ThreadRecordingPool()
        self.log, self.events = capturing_logger()
        self.resource = AuthConfigResource(
            parse_server_users(USERS_YAML), reactor=reactor, thread_pool=self.pool, log=self.log
        )
        self.pool.start()
        self.addCleanup(self.pool.stop)
        return defer.Deferred.fromCoroutine(self._listen())

    async def _listen(self, **files: str) -> None:
        """Serve the resource on a new port (``files``: ``cert``, ``key``, ``client_ca``)."""
        service = webhook_server_service(
            self.resource, server_config("127.0.0.1:0", **files), reactor=reactor, log=self.log
        )
        await service.startService()
        self.addCleanup(service.stopService)
        assert service.port is not None
        self.port = service.port

    def pem_files(self, name: str, issued: Issued) -> tuple[str, str]:
        """``issued``'s certificate and key written to files; their paths."""
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
        with open(cert, "w") as f:
            f.write(issued.cert_pem)
        with open(key, "w") as f:
            f.write(issued.key_pem)
        return cert, key

    async def decide(self, client: WebhookClient, path: str, body: Any) -> AuthResult:
        return await client.post(path, body, decode=decode_auth_response)

    def test_auth_and_authz(self) -> defer.Deferred[None]:
        """Password, public key and authorization answers decode in the gateway's client."""

        async def check() -> None:
            client = WebhookClient(
                ClientConfig(url=f"http://127.0.0.1:{self.port}", timeout=10.0), reactor=reactor
            )
            try:
                ok = await self.decide(client, PASSWORD_PATH, password_request(METADATA, b"secret"))
                wrong = await self.decide(client, PASSWORD_PATH, password_request(METADATA, b"x"))
                key = await self.decide(client, PUBLIC_KEY_PATH, public_key_request(METADATA, KEY))
                other = await self.decide(
                    client, PUBLIC_KEY_PATH, public_key_request(METADATA, OTHER_KEY)
                )
                authz = await self.decide(client, AUTHZ_PATH, authz_request(METADATA.merge(ok)))
            finally:
                await client.close()
            self.assertEqual((ok.success, ok.authenticated_username), (True, "alice"))
            self.assertEqual(ok.environment["TEAM"].value, "blue")
            self.assertEqual(ok.files["/home/user/motd"].value, b"hello\n")
            self.assertFalse(wrong.success)
            self.assertTrue(key.success)
            self.assertFalse(other.success)
            self.assertEqual((authz.success, authz.authenticated_username), (True, "alice"))

        return defer.Deferred.fromCoroutine(check())

    def test_bcrypt_off_the_reactor_thread(self) -> defer.Deferred[None]:
        """Password checks run in the bcrypt pool's threads, never the reactor's."""

        async def check() -> None:
            client = WebhookClient(
                ClientConfig(url=f"http://127.0.0.1:{self.port}", timeout=10.0), reactor=reactor
            )
            try:
                await self.decide(client, PASSWORD_PATH, password_request(METADATA, b"secret"))
            finally:
                await client.close()
            self.assertEqual(len(self.pool.ran_in), 1)
            self.assertIsNot(self.pool.ran_in[0], threading.current_thread())

        return defer.Deferred.fromCoroutine(check())

    def test_config_json(self) -> defer.Deferred[None]:
        """A plain JSON POST to /config gets the user's configuration in JSON form."""

        async def check() -> None:
            pool = HTTPConnectionPool(reactor)
            self.addCleanup(pool.closeCachedConnections)
            response = await treq.post(
                f"http://127.0.0.1:{self.port}/config",
                json.dumps(pending_metadata(METADATA)).encode(),
                headers={"Content-Type": "application/json"},
                pool=pool,
            )
            answer = json.loads(await response.content())
            self.assertEqual(response.code, 200)
            self.assertEqual(
                answer["config"]["docker"]["execution"]["container"]["Image"], "alpine:3.20"
            )
            self.assertEqual(
                answer["config"]["docker"]["timeouts"]["containerStart"], 90_000_000_000
            )

        return defer.Deferred.fromCoroutine(check())

    def test_tls(self) -> defer.Deferred[None]:
        """Served with a certificate, the gateway's client reaches it over HTTPS."""
        ca = make_ca()
        cert, key = self.pem_files("server", issue(ca, "localhost", ips=("127.0.0.1",)))

        async def check() -> None:
            await self._listen(cert=cert, key=key)
            client = WebhookClient(
                ClientConfig(
                    url=f"https://127.0.0.1:{self.port}", timeout=10.0, cacert=ca.cert_pem
                ),
                reactor=reactor,
            )
            try:
                result = await self.decide(
                    client, PUBLIC_KEY_PATH, public_key_request(METADATA, KEY)
                )
            finally:
                await client.close()
            self.assertTrue(result.success)

        return defer.Deferred.fromCoroutine(check())

    async def test_mutual_tls(self) -> None:
        """With a client CA, only a client presenting a certificate from it gets an answer."""
        ca, client_ca = make_ca(), make_ca("Client CA")
        cert, key = self.pem_files("server", issue(ca, "localhost", ips=("127.0.0.1",)))
        client_ca_file, _ = self.pem_files("client-ca", client_ca)
        await self._listen(cert=cert, key=key, client_ca=client_ca_file)
        url = f"https://127.0.0.1:{self.port}"
        good = issue(client_ca, "gateway", client=True)
        stranger = issue(make_ca("Other CA"), "stranger", client=True)

        async def ask(identity: Issued | None) -> AuthResult:
            tls: dict[str, str] = {"cacert": ca.cert_pem}
            if identity is not None:
                tls.update(cert=identity.cert_pem, key=identity.key_pem)
            client = WebhookClient(ClientConfig(url=url, timeout=10.0, **tls), reactor=reactor)
            try:
                return await self.decide(client, PUBLIC_KEY_PATH, public_key_request(METADATA, KEY))
            finally:
                await client.close()

        self.assertTrue((await ask(good)).success)
        with self.assertRaises(WebhookConnectionError):
            await ask(None)
        with self.assertRaises(WebhookConnectionError):
            await ask(stranger)

    async def test_oversized_body_refused_by_the_site(self) -> None:
        """A body over the limit is refused with 413 by the site, before the resource reads it."""
        self.assertEqual(LIMITS.max_body, MAX_REQUEST_BODY)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        body = json.dumps({"padding": "x" * MAX_REQUEST_BODY}).encode()
        response = await treq.post(
            f"http://127.0.0.1:{self.port}/password",
            body,
            headers={"Content-Type": "application/json"},
            pool=pool,
        )
        self.assertEqual(response.code, 413)
        self.assertEqual(await response.content(), b"request body too large\r\n")
        [limit] = with_code(self.events, messages.HTTP_SERVER_LIMIT.code)
        self.assertEqual(limit["service"], "test-webhook-server")
        self.assertEqual(with_code(self.events, messages.TEST_WEBHOOK_BAD_REQUEST.code), [])

    async def test_available_with_the_bound_address(self) -> None:
        """Listening is logged as CONFIG_SERVER_AVAILABLE with the bound address."""
        [available] = with_code(self.events, messages.CONFIG_SERVER_AVAILABLE.code)
        self.assertEqual(available["listen"], f"127.0.0.1:{self.port}")


class ServerConfigTests(SynchronousTestCase):
    """The command's options become a checked HTTP server block, errors naming the option."""

    def test_plain(self) -> None:
        config = server_config("[::1]:8080")
        self.assertEqual((config.listen, config.cert, config.key), ("[::1]:8080", "", ""))

    def test_files_are_read(self) -> None:
        ca = make_ca()
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "ca.pem")
        with open(path, "w") as f:
            f.write(ca.cert_pem)
        config = server_config("127.0.0.1:0", cert=path, key=path, client_ca=path)
        self.assertEqual(config.clientcacert, ca.cert_pem)

    def test_refused(self) -> None:
        missing = os.path.join(self.mktemp(), "none.pem")
        pem = make_ca().cert_pem
        cases = (
            ({"listen": "8080"}, "--listen: must be host:port"),
            ({"cert": missing, "key": missing}, "--cert: cannot read file"),
            ({"cert": pem}, "--cert and --key: cert and key must be set together"),
            ({"client_ca": pem}, "--client-ca: needs --cert and --key"),
        )
        for options, message in cases:
            with self.subTest(options=options):
                arguments = {"listen": "127.0.0.1:0", **options}
                with self.assertRaises(ValueError) as raised:
                    server_config(**arguments)
                self.assertTrue(str(raised.exception).startswith(message), str(raised.exception))
