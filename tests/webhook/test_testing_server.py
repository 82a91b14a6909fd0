"""Tests for conch_container.testing.webhook, the test authentication webhook."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from conch_container.testing.webhook import (
    DOWN,
    HANG,
    AuthWebhookResource,
    WebhookUser,
    config_answer,
    listen_tcp,
    slow,
    status,
)
from conch_container.webhook.client import WebhookClient, WebhookTimeoutError
from tests.webhook.support import ClientConfig

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnTNqmvBWQTPEwhjXT4fBqPeLH7c2NFQ7Bm6C4tCGqc"


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.resource = AuthWebhookResource(
            {"bob": WebhookUser(password="pw", authorized_keys=(KEY + " bob@host",))}
        )
        self.treq = StubTreq(self.resource)

    def post(self, path: str, body: Any, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        response = self.successResultOf(self.treq.post("http://hook.test" + path, data=data))  # type: ignore[attr-defined]
        content = self.successResultOf(response.content())
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content

    def test_password(self) -> None:
        """/password accepts the right password and refuses others."""
        self.assertEqual(
            self.post("/password", {"username": "bob", "passwordBase64": "cHc="}),
            (200, {"success": True, "authenticatedUsername": "bob"}),
        )
        self.assertEqual(
            self.post("/password", {"username": "bob", "passwordBase64": "eA=="}),
            (200, {"success": False}),
        )
        self.assertEqual(
            self.post("/x/password", {"username": "bob", "passwordBase64": "%%%"}),
            (200, {"success": False}),
        )

    def test_config(self) -> None:
        """/config answers with the user's config, metadata, environment and files."""
        self.resource.users["carol"] = WebhookUser(
            config={"security": {"maxSessions": 1}},
            config_metadata={"tier": "gold"},
            config_environment={"LANG": "C"},
            config_files={"/etc/motd": b"hi"},
        )
        self.assertEqual(
            self.post("/config", {"username": "c", "authenticatedUsername": "carol"}),
            (
                200,
                {
                    "config": {"security": {"maxSessions": 1}},
                    "metadata": {"tier": {"value": "gold", "sensitive": False}},
                    "environment": {"LANG": {"value": "C", "sensitive": False}},
                    "files": {"/etc/motd": {"value": "aGk=", "sensitive": False}},
                },
            ),
        )
        self.assertEqual(self.post("/x/config", {"username": "nobody"}), (200, {"config": {}}))

    def test_config_answer_fault(self) -> None:
        """config_answer() answers every request with the given config, whoever asks."""
        self.resource.inject(config_answer({"ssh": {"listen": "x"}}))
        self.assertEqual(
            self.post("/config", {"username": "bob"}), (200, {"config": {"ssh": {"listen": "x"}}})
        )

    def test_pubkey(self) -> None:
        """/pubkey compares keys without their comments."""
        code, answer = self.post("/pubkey", {"username": "bob", "publicKey": KEY})
        self.assertEqual((code, answer["success"]), (200, True))
        code, answer = self.post("/pubkey", {"username": "eve", "publicKey": KEY})
        self.assertEqual(answer, {"success": False})

    def test_authz_rule(self) -> None:
        """/authz follows the ``authorize`` callable when one is given."""
        self.assertTrue(self.post("/authz", {"username": "bob"})[1]["success"])
        self.assertFalse(self.post("/authz", {"username": "eve"})[1]["success"])
        self.resource.authorize = lambda body: body["username"] == "eve"
        self.assertTrue(self.post("/authz", {"username": "eve"})[1]["success"])

    def test_bad_requests(self) -> None:
        """Unknown endpoints are 404 and bodies that are not JSON objects are 400."""
        self.assertEqual(self.post("/nope", {})[0], 404)
        self.assertEqual(self.post("/password", None, raw=b"not json")[0], 400)
        self.assertEqual(self.resource.requests[-1].body, None)

    def test_recorder(self) -> None:
        """Every request is recorded with its endpoint, path, JSON body and headers."""
        self.post("/a/password", {"username": "bob"})
        self.post("/a/pubkey", {"username": "bob"})
        [request] = [r for r in self.resource.requests if r.endpoint == "pubkey"]
        self.assertEqual((request.path, request.method), ("/a/pubkey", "POST"))
        self.assertEqual(self.resource.bodies("password"), [{"username": "bob"}])

    def test_fault_count(self) -> None:
        """A fault limited to a count heals by itself."""
        self.resource.inject(DOWN, count=2)
        self.assertEqual(self.post("/authz", {"username": "bob"})[0], 503)
        self.assertEqual(self.post("/authz", {"username": "bob"})[0], 503)
        self.assertEqual(self.post("/authz", {"username": "bob"})[0], 200)

    def test_status_fault(self) -> None:
        """status(N) answers N until healed."""
        self.resource.inject(status(418))
        self.assertEqual(self.post("/authz", {"username": "bob"})[0], 418)
        self.resource.heal()
        self.assertEqual(self.post("/authz", {"username": "bob"})[0], 200)

    def test_slow_needs_clock(self) -> None:
        """A delayed answer needs a clock."""
        self.assertRaises(ValueError, self.resource.inject, slow(1))

    def test_slow(self) -> None:
        """slow(d) answers after d seconds on the resource's clock."""
        clock = Clock()
        resource = AuthWebhookResource({"bob": WebhookUser(password="pw")}, clock=clock)
        resource.inject(slow(3))
        treq = StubTreq(resource)
        post = treq.post  # type: ignore[attr-defined]
        d = post("http://h/password", data=b'{"username":"bob","passwordBase64":"cHc="}')
        self.assertNoResult(d)
        self.assertEqual(resource.pending, 1)
        clock.advance(3)
        treq.flush()
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(resource.pending, 0)


class RealPortTests(TestCase):
    def test_hang_and_release(self) -> defer.Deferred[None]:
        """On a real port a hanging request times the client out; release() drops it."""
        resource = AuthWebhookResource()
        resource.inject(HANG)
        port, url = listen_tcp(reactor, resource)
        self.addCleanup(port.stopListening)
        self.assertTrue(url.startswith("http://127.0.0.1:"))

        async def check() -> None:
            client = WebhookClient(ClientConfig(url=url, timeout=0.2), reactor=reactor)
            try:
                with self.assertRaises(WebhookTimeoutError):
                    await client.post("password", {})
            finally:
                await client.close()
            resource.release()
            self.assertEqual(resource.pending, 0)

        return defer.Deferred.fromCoroutine(check())
