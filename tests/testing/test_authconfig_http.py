"""The test webhook server on loopback, called by the gateway's own webhook client."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import treq
from twisted.internet import defer, reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from conch_container.metadata import AuthResult
from conch_container.testing.authconfig import AuthConfigResource, parse_server_users, serve
from conch_container.testing.authconfig.serve import load_tls
from conch_container.webhook.client import WebhookClient
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
from tests.webhook.pki import issue, make_ca
from tests.webhook.support import ClientConfig


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
        self.resource = AuthConfigResource(
            parse_server_users(USERS_YAML), reactor=reactor, thread_pool=self.pool
        )
        self.pool.start()
        self.addCleanup(self.pool.stop)
        return defer.Deferred.fromCoroutine(self._listen())

    async def _listen(self, **kwargs: Any) -> None:
        port = await serve(reactor, self.resource, "127.0.0.1:0", **kwargs)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port  # type: ignore[attr-defined]

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
        leaf = issue(ca, "localhost", ips=("127.0.0.1",))
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert, "w") as f:
            f.write(leaf.cert_pem)
        with open(key, "w") as f:
            f.write(leaf.key_pem)

        async def check() -> None:
            await self._listen(tls=load_tls(cert, key))
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
