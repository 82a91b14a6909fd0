"""Tests for conch_container.auth.webhook: the auth webhook with ContainerSSH's retry schedule."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from conch_container.auth.webhook import WebhookAuthenticator, WebhookAuthorizer
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import IAuthorizer, IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.log import Level
from conch_container.metadata import AuthResult, ConnectionMetadata, FileValue, MetadataValue
from conch_container.testing.webhook import (
    DOWN,
    GARBAGE,
    HANG,
    AuthWebhookResource,
    WebhookUser,
    memory_agent,
    redirect,
    status,
)
from conch_container.webhook.client import WebhookClient
from tests.webhook.support import ClientConfig, capturing_logger, codes, with_code

CID = "00112233445566778899aabbccddeeff"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnTNqmvBWQTPEwhjXT4fBqPeLH7c2NFQ7Bm6C4tCGqc"


def _metadata(username: str = "alice", **kwargs: Any) -> ConnectionMetadata:
    return ConnectionMetadata(
        connection_id=CID,
        remote_address="192.0.2.7:50022",
        client_version="SSH-2.0-OpenSSH_9.2",
        username=username,
        **kwargs,
    )


class _Harness:
    def __init__(self, resource: AuthWebhookResource, **config: Any) -> None:
        self.clock = Clock()
        self.resource = resource
        self.agent = memory_agent(resource)
        self.log, self.events = capturing_logger()
        cfg = ClientConfig(**{"url": "http://auth.test/hook/", **config})
        self.client = WebhookClient(cfg, reactor=self.clock, agent=self.agent, log=self.log)
        self.authenticator = WebhookAuthenticator(
            self.client, clock=self.clock, log=self.log, auth_timeout=cfg.auth_timeout
        )
        self.authorizer = WebhookAuthorizer(
            self.client, clock=self.clock, log=self.log, auth_timeout=cfg.auth_timeout
        )


def _users() -> dict[str, WebhookUser]:
    return {
        "alice": WebhookUser(
            password="secret",
            authorized_keys=(KEY + " alice@laptop",),
            authenticated_username="alice-ops",
            metadata={"team": "ops"},
            environment={"GREETING": MetadataValue("hi", sensitive=True)},
            files={"/home/alice/.motd": b"welcome\n"},
        )
    }


class InterfaceTests(SynchronousTestCase):
    def test_provides(self) -> None:
        """The authenticator and authorizer provide the interfaces they claim."""
        h = _Harness(AuthWebhookResource())
        verifyObject(IPasswordAuthenticator, h.authenticator)
        verifyObject(IPublicKeyAuthenticator, h.authenticator)
        verifyObject(IAuthorizer, h.authorizer)


class RequestTests(SynchronousTestCase):
    def test_password_request(self) -> None:
        """The password call POSTs exactly ContainerSSH's JSON to {url}/password."""
        h = _Harness(AuthWebhookResource(_users()))
        self.successResultOf(h.authenticator.authenticate_password(_metadata(), b"secret"))
        [request] = h.resource.requests
        self.assertEqual(request.path, "/hook/password")
        self.assertEqual(
            request.body,
            {
                "username": "alice",
                "remoteAddress": "192.0.2.7:50022",
                "connectionId": CID,
                "clientVersion": "SSH-2.0-OpenSSH_9.2",
                "passwordBase64": "c2VjcmV0",
            },
        )
        self.assertEqual(request.headers["content-type"], "application/json")
        self.assertEqual(request.headers["accept"], "application/json")

    def test_pubkey_request(self) -> None:
        """The public key call POSTs the key without comment to {url}/pubkey."""
        h = _Harness(AuthWebhookResource(_users()))
        self.successResultOf(h.authenticator.authenticate_public_key(_metadata(), KEY))
        [request] = h.resource.requests
        self.assertEqual(request.path, "/hook/pubkey")
        self.assertEqual(
            request.body,
            {
                "username": "alice",
                "remoteAddress": "192.0.2.7:50022",
                "connectionId": CID,
                "clientVersion": "SSH-2.0-OpenSSH_9.2",
                "publicKey": KEY,
            },
        )

    def test_authz_request(self) -> None:
        """The authz call carries the authenticated metadata, maps included."""
        h = _Harness(AuthWebhookResource(_users()))
        metadata = _metadata(
            authenticated_username="alice-ops",
            metadata={"team": MetadataValue("ops")},
            environment={"GREETING": MetadataValue("hi", True)},
            files={"/f": FileValue(b"\x01\x02")},
        )
        result = self.successResultOf(h.authorizer.authorize(metadata))
        self.assertTrue(result.success)
        [request] = h.resource.requests
        self.assertEqual(request.path, "/hook/authz")
        self.assertEqual(
            request.body,
            {
                "username": "alice",
                "remoteAddress": "192.0.2.7:50022",
                "connectionId": CID,
                "clientVersion": "SSH-2.0-OpenSSH_9.2",
                "authenticatedUsername": "alice-ops",
                "metadata": {"team": {"value": "ops", "sensitive": False}},
                "environment": {"GREETING": {"value": "hi", "sensitive": True}},
                "files": {"/f": {"value": "AQI=", "sensitive": False}},
            },
        )


class DecisionTests(SynchronousTestCase):
    def test_success_result(self) -> None:
        """A success answer becomes an AuthResult with everything the server returned."""
        h = _Harness(AuthWebhookResource(_users()))
        result = self.successResultOf(h.authenticator.authenticate_password(_metadata(), b"secret"))
        self.assertEqual(
            result,
            AuthResult(
                success=True,
                authenticated_username="alice-ops",
                metadata={"team": MetadataValue("ops")},
                environment={"GREETING": MetadataValue("hi", True)},
                files={"/home/alice/.motd": FileValue(b"welcome\n")},
            ),
        )
        merged = _metadata().merge(result)
        self.assertEqual(merged.effective_username, "alice-ops")
        self.assertEqual(merged.environment["GREETING"].value, "hi")

    def test_refused(self) -> None:
        """A wrong password is a refusal (not an error), logged AUTH_FAILED."""
        h = _Harness(AuthWebhookResource(_users()))
        result = self.successResultOf(h.authenticator.authenticate_password(_metadata(), b"no"))
        self.assertEqual(result, AuthResult(False))
        self.assertEqual(
            [c for c in codes(h.events) if c.startswith("AUTH")], ["AUTH", "AUTH_FAILED"]
        )

    def test_unknown_key_refused(self) -> None:
        """A key the server does not know is refused."""
        h = _Harness(AuthWebhookResource(_users()))
        other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBVh4S6sO1cOmGZ3b0qQwLqLMVyWm5x9kX2K8XzYjvQ9"
        result = self.successResultOf(h.authenticator.authenticate_public_key(_metadata(), other))
        self.assertFalse(result.success)

    def test_authz_refused(self) -> None:
        """An authz refusal is a result with success false."""
        resource = AuthWebhookResource(_users(), authorize=lambda body: False)
        h = _Harness(resource)
        result = self.successResultOf(h.authorizer.authorize(_metadata()))
        self.assertFalse(result.success)

    def test_extra_fields_accepted(self) -> None:
        """Fields the protocol does not define are accepted (ContainerSSH would retry)."""
        resource = AuthWebhookResource(_users())
        resource.extra_fields = {"message": "hello", "username": "alice", "ttl": 5}
        h = _Harness(resource)
        result = self.successResultOf(h.authenticator.authenticate_password(_metadata(), b"secret"))
        self.assertTrue(result.success)
        self.assertEqual(len(resource.requests), 1)

    def test_events(self) -> None:
        """AUTH precedes the call and AUTH_SUCCESSFUL follows, with the connection's fields."""
        h = _Harness(AuthWebhookResource(_users()))
        self.successResultOf(h.authenticator.authenticate_password(_metadata(), b"secret"))
        auth = [e for e in h.events if e["code"].startswith("AUTH")]
        self.assertEqual([e["code"] for e in auth], ["AUTH", "AUTH_SUCCESSFUL"])
        for event in auth:
            self.assertEqual(event["username"], "alice")
            self.assertEqual(event["connectionId"], CID)
            self.assertEqual(event["remoteAddr"], "192.0.2.7:50022")
            self.assertEqual(event["authtype"], "password")
            self.assertEqual(event["url"], "http://auth.test/hook/password")

    def test_authz_events(self) -> None:
        """Authorization events carry authtype ``authorization``."""
        h = _Harness(AuthWebhookResource(_users()))
        metadata = _metadata(authenticated_username="alice-ops")
        self.assertTrue(self.successResultOf(h.authorizer.authorize(metadata)).success)
        self.assertEqual(with_code(h.events, "AUTH")[0]["authtype"], "authorization")
        successful = with_code(h.events, "AUTH_SUCCESSFUL")[0]
        self.assertEqual(successful["authenticatedUsername"], "alice-ops")

    def test_password_never_logged(self) -> None:
        """Neither the password nor its base64 appears in any event, even on failures."""
        resource = AuthWebhookResource(_users())
        resource.inject(GARBAGE)
        h = _Harness(resource, auth_timeout=15.0)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.advance(10)
        self.failureResultOf(d, ContainerSSHError)
        text = repr(h.events)
        self.assertNotIn("secret", text)
        self.assertNotIn("c2VjcmV0", text)


class RetryTests(SynchronousTestCase):
    def test_retries_every_10s_until_deadline(self) -> None:
        """A down server is retried every 10 s; after authTimeout (60 s) the user is told so."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        h = _Harness(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        for attempt in range(1, 6):
            self.assertEqual(len(resource.requests), attempt)
            self.assertNoResult(d)
            h.clock.advance(10)
        # The sixth attempt, at 50 s, fails too; no seventh fits before 60 s.
        failure = self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(h.clock.seconds(), 50)
        self.assertEqual(len(resource.requests), 6)
        self.assertEqual(failure.value.code.code, "AUTH_BACKEND_ERROR")
        self.assertEqual(failure.value.user_message, AUTH_UNAVAILABLE_USER_MESSAGE)
        self.assertIn("503", failure.value.explanation)
        backend = with_code(h.events, "AUTH_BACKEND_ERROR")
        self.assertEqual([e["cs_level"] for e in backend], [Level.DEBUG] * 5 + [Level.ERROR])
        self.assertEqual({e["reason"] for e in backend}, {"AUTH_INVALID_STATUS"})
        invalid = with_code(h.events, "AUTH_INVALID_STATUS")
        self.assertEqual([e["statusCode"] for e in invalid], [503] * 6)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_500_then_200(self) -> None:
        """A failure followed by a good answer succeeds on the retry, 10 s later."""
        resource = AuthWebhookResource(_users())
        resource.inject(status(500), count=1)
        h = _Harness(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        self.assertNoResult(d)
        h.clock.advance(9.9)
        self.assertNoResult(d)
        h.clock.advance(0.1)
        self.assertTrue(self.successResultOf(d).success)
        self.assertEqual(len(resource.requests), 2)

    def test_garbage_unavailable(self) -> None:
        """Answers that never decode end as unavailable, after retrying."""
        resource = AuthWebhookResource(_users())
        resource.inject(GARBAGE)
        h = _Harness(resource)
        d = h.authenticator.authenticate_public_key(_metadata(), KEY)
        h.clock.pump([10] * 5)
        self.failureResultOf(d, ContainerSSHError)
        self.assertEqual(len(resource.requests), 6)
        reasons = {e["reason"] for e in with_code(h.events, "AUTH_BACKEND_ERROR")}
        self.assertEqual(reasons, {"HTTP_CLIENT_DECODE_FAILED"})

    def test_wrong_types_retried(self) -> None:
        """A JSON answer with a mistyped field is a decode failure and is retried."""
        resource = AuthWebhookResource(_users())
        resource.extra_fields = {"success": "yes"}
        h = _Harness(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        resource.extra_fields = {}
        h.clock.advance(10)
        self.assertTrue(self.successResultOf(d).success)
        self.assertIn("HTTP_CLIENT_DECODE_FAILED", codes(h.events))

    def test_timeout_per_call(self) -> None:
        """A hanging server costs the per-call timeout, then the retry pause."""
        resource = AuthWebhookResource(_users())
        resource.inject(HANG, count=1)
        h = _Harness(resource, timeout=2.0)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.advance(2)
        h.agent.flush()
        self.assertEqual(resource.pending, 0)
        self.assertNoResult(d)
        self.assertEqual(
            with_code(h.events, "AUTH_BACKEND_ERROR")[0]["reason"],
            "HTTP_CLIENT_CONNECTION_FAILED",
        )
        h.clock.advance(10)
        self.assertTrue(self.successResultOf(d).success)

    def test_deadline_caps_attempt(self) -> None:
        """An attempt never runs past authTimeout: its timeout shrinks to the time left."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN, count=1)
        h = _Harness(resource, timeout=2.0, auth_timeout=11.0)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        self.assertEqual(len(resource.requests), 1)
        resource.inject(HANG)
        h.clock.advance(10)  # the second attempt starts with 1 s left
        self.assertEqual(len(resource.requests), 2)
        h.clock.advance(0.999)
        self.assertNoResult(d)
        h.clock.advance(0.001)
        self.failureResultOf(d, ContainerSSHError)
        h.agent.flush()
        self.assertEqual(resource.pending, 0)

    def test_redirect_disabled_unavailable(self) -> None:
        """A redirect with redirects disabled is retried like any failure."""
        resource = AuthWebhookResource(_users())
        resource.inject(redirect("/elsewhere/password"))
        h = _Harness(resource, auth_timeout=5.0)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        h.clock.advance(5)
        self.failureResultOf(d, ContainerSSHError)
        reasons = {e["reason"] for e in with_code(h.events, "AUTH_BACKEND_ERROR")}
        self.assertEqual(reasons, {"HTTP_CLIENT_REDIRECTS_DISABLED"})

    def test_cancel_stops_retrying(self) -> None:
        """Cancelling (the client went away) stops the retries."""
        resource = AuthWebhookResource(_users())
        resource.inject(DOWN)
        h = _Harness(resource)
        d = h.authenticator.authenticate_password(_metadata(), b"secret")
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.clock.advance(60)
        self.assertEqual(len(resource.requests), 1)


class RealNetworkTests(TestCase):
    def test_connection_refused_unavailable(self) -> defer.Deferred[None]:
        """A webhook on a closed port ends as unavailable within authTimeout."""
        from conch_container.testing.webhook import listen_tcp

        port, url = listen_tcp(reactor, AuthWebhookResource())
        log, events = capturing_logger()

        async def check() -> None:
            await defer.maybeDeferred(port.stopListening)
            client = WebhookClient(ClientConfig(url=url), reactor=reactor, log=log)
            authenticator = WebhookAuthenticator(
                client,
                clock=reactor,
                log=log,
                auth_timeout=0.3,  # type: ignore[arg-type]
            )
            try:
                with self.assertRaises(ContainerSSHError):
                    await authenticator.authenticate_password(_metadata(), b"secret")
            finally:
                await authenticator.close()
            reasons = {e["reason"] for e in with_code(events, "AUTH_BACKEND_ERROR")}
            self.assertEqual(reasons, {"HTTP_CLIENT_CONNECTION_FAILED"})

        return defer.Deferred.fromCoroutine(check())

    def test_real_server(self) -> defer.Deferred[None]:
        """The test webhook served on a real port answers the real client."""
        from conch_container.testing.webhook import listen_tcp

        resource = AuthWebhookResource(_users())
        port, url = listen_tcp(reactor, resource)
        self.addCleanup(port.stopListening)

        async def check() -> None:
            client = WebhookClient(ClientConfig(url=url), reactor=reactor)
            authenticator = WebhookAuthenticator(client, clock=reactor)  # type: ignore[arg-type]
            try:
                result = await authenticator.authenticate_password(_metadata(), b"secret")
            finally:
                await authenticator.close()
            self.assertEqual(result.authenticated_username, "alice-ops")
            self.assertEqual(resource.requests[0].path, "/password")

        return defer.Deferred.fromCoroutine(check())
