"""Tests for the test webhook server's resource, in memory (no sockets, no threads)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from conch_container import messages
from conch_container.testing.authconfig import AuthConfigResource, parse_server_users
from conch_container.testing.threads import NonThreadPool, SynchronousReactorThreads
from conch_container.webhook.protocol import (
    authz_request,
    password_request,
    pending_metadata,
    public_key_request,
)
from tests.testing.authconfig_support import KEY, METADATA, OTHER_KEY, USERS_YAML
from tests.webhook.support import capturing_logger, with_code


class ResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pool = NonThreadPool()
        self.log, self.events = capturing_logger()
        self.resource = AuthConfigResource(
            parse_server_users(USERS_YAML),
            reactor=SynchronousReactorThreads(),
            thread_pool=self.pool,
            log=self.log,
            max_body=4096,
        )
        self.treq = StubTreq(self.resource)

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        response = self.successResultOf(
            self.treq.post(  # type: ignore[attr-defined]
                "http://hook.test" + path,
                data=data,
                headers={"Content-Type": "application/json"},
            )
        )
        content = self.successResultOf(response.content())
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return response.code, json.loads(content)

    def password(self, username: str, password: bytes) -> tuple[int, Any]:
        metadata = attrs.evolve(METADATA, username=username)
        return self.post("/password", password_request(metadata, password))

    def test_password_ok(self) -> None:
        """The right password succeeds with the user's name, metadata, environment and files."""
        self.assertEqual(
            self.password("alice", b"secret"),
            (
                200,
                {
                    "success": True,
                    "authenticatedUsername": "alice",
                    "metadata": {"floor": {"value": "3", "sensitive": False}},
                    "environment": {
                        "TEAM": {"value": "blue", "sensitive": False},
                        "TOKEN": {"value": "t0ken", "sensitive": True},
                    },
                    "files": {
                        "/home/user/motd": {
                            "value": base64.b64encode(b"hello\n").decode(),
                            "sensitive": False,
                        },
                        "/home/user/.secret": {
                            "value": base64.b64encode(b"s3cr3t").decode(),
                            "sensitive": True,
                        },
                    },
                },
            ),
        )
        self.assertEqual(self.pool.calls, 1)

    def test_password_wrong_or_unknown_user(self) -> None:
        """A wrong password and an unknown user both get success false, after a bcrypt check."""
        self.assertEqual(self.password("alice", b"guess"), (200, {"success": False}))
        self.assertEqual(self.password("mallory", b"secret"), (200, {"success": False}))
        self.assertEqual(self.pool.calls, 2)

    def test_pubkey(self) -> None:
        """An authorized key succeeds (comment or not); another key does not."""
        code, answer = self.post("/pubkey", public_key_request(METADATA, KEY))
        self.assertEqual(
            (code, answer["success"], answer["authenticatedUsername"]), (200, True, "alice")
        )
        self.assertEqual(
            self.post("/pubkey", public_key_request(METADATA, OTHER_KEY)), (200, {"success": False})
        )
        self.assertEqual(self.pool.calls, 0)

    def test_authz(self) -> None:
        """Authorization allows a known user who may log in, and nobody else."""
        allowed = attrs.evolve(METADATA, authenticated_username="alice")
        self.assertEqual(
            self.post("/authz", authz_request(allowed)),
            (200, {"success": True, "authenticatedUsername": "alice"}),
        )
        for username, authenticated in (("bob", "bob"), ("mallory", ""), ("alice", "bob")):
            with self.subTest(username=username, authenticated=authenticated):
                metadata = attrs.evolve(
                    METADATA, username=username, authenticated_username=authenticated
                )
                self.assertEqual(
                    self.post("/authz", authz_request(metadata)), (200, {"success": False})
                )

    def test_config(self) -> None:
        """The configuration server answers the user's config in JSON form, {} for others."""
        code, answer = self.post("/config", pending_metadata(METADATA))
        self.assertEqual(code, 200)
        self.assertEqual(list(answer), ["config"])
        self.assertEqual(answer["config"]["docker"]["timeouts"], {"containerStart": 90_000_000_000})
        self.assertEqual(answer["config"]["docker"]["execution"]["host"], {"Memory": 1000000})
        other = attrs.evolve(METADATA, username="mallory")
        self.assertEqual(
            self.post("/prefix/config", pending_metadata(other)), (200, {"config": {}})
        )
        self.assertEqual(self.post("/", pending_metadata(METADATA)), (code, answer))

    def test_malformed_requests(self) -> None:
        """Bodies that are not the documented JSON get 400 and a short JSON error."""
        base = pending_metadata(METADATA)
        cases: list[tuple[str, bytes]] = [
            ("/password", b"{not json"),
            ("/password", b"[]"),
            ("/password", json.dumps({**base, "passwordBase64": "%%%"}).encode()),
            ("/password", json.dumps(base).encode()),
            ("/pubkey", json.dumps(base).encode()),
            ("/authz", json.dumps({**base, "username": 7}).encode()),
            (
                "/config",
                json.dumps({k: v for k, v in base.items() if k != "connectionId"}).encode(),
            ),
            ("/config", json.dumps({**base, "environment": {"A": "b"}}).encode()),
        ]
        for path, raw in cases:
            with self.subTest(path=path, raw=raw):
                code, answer = self.post(path, raw=raw)
                self.assertEqual(code, 400)
                self.assertEqual(list(answer), ["error"])
        self.assertEqual(
            len(with_code(self.events, messages.TEST_WEBHOOK_BAD_REQUEST.code)), len(cases)
        )
        self.assertEqual(self.pool.calls, 0)

    def test_wrong_endpoint_method_or_size(self) -> None:
        """Unknown endpoints, other methods and oversized bodies are refused with JSON errors."""
        self.assertEqual(self.post("/nope", pending_metadata(METADATA))[0], 404)
        oversized = json.dumps({**pending_metadata(METADATA), "pad": "x" * 5000}).encode()
        self.assertEqual(self.post("/config", raw=oversized)[0], 413)
        response = self.successResultOf(self.treq.get("http://hook.test/config"))  # type: ignore[attr-defined]
        self.assertEqual(response.code, 405)
        self.assertEqual(
            json.loads(self.successResultOf(response.content())), {"error": "only POST is answered"}
        )

    def test_nothing_secret_logged(self) -> None:
        """Passwords and the values of environment, metadata and files never reach a log event."""
        self.password("alice", b"secret")
        self.password("alice", b"wrong-guess")
        self.post(
            "/password",
            raw=json.dumps({**pending_metadata(METADATA), "passwordBase64": "%%%"}).encode(),
        )
        self.post("/config", pending_metadata(METADATA))
        logged = repr(self.events)
        for secret in ("secret", "wrong-guess", "t0ken", "s3cr3t", "c2VjcmV0", "blue"):
            self.assertNotIn(secret, logged)
        answered = with_code(self.events, messages.TEST_WEBHOOK_ANSWERED.code)
        self.assertEqual([e["success"] for e in answered], [True, False, True])

    def test_busy(self) -> None:
        """Beyond the cap on password checks in flight the answer is 503 (the gateway retries)."""
        resource = AuthConfigResource(
            parse_server_users(USERS_YAML),
            reactor=SynchronousReactorThreads(),
            thread_pool=_HeldPool(),
            log=self.log,
            max_pending=1,
        )
        treq = StubTreq(resource)
        body = json.dumps(password_request(METADATA, b"secret")).encode()
        first = treq.post("http://hook.test/password", data=body)  # type: ignore[attr-defined]
        self.assertNoResult(first)
        other = attrs.evolve(METADATA, remote_address="198.51.100.1:1")
        second = self.successResultOf(
            treq.post(
                "http://hook.test/password", data=json.dumps(password_request(other, b"x")).encode()
            )  # type: ignore[attr-defined]
        )
        self.assertEqual(second.code, 503)


class _HeldPool(NonThreadPool):
    """A pool whose work finishes only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def callInThreadWithCallback(self, onResult: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        self.waiting.append((onResult, func, args))

    def finish_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for on_result, func, args in waiting:
            on_result(True, func(*args))


class _FailingPool(NonThreadPool):
    """A pool whose work fails in a way nobody planned for."""

    def callInThreadWithCallback(self, onResult: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        onResult(False, RuntimeError("the pool broke"))


class FailureTests(SynchronousTestCase):
    def resource(self, pool: NonThreadPool) -> tuple[AuthConfigResource, list[dict[str, Any]]]:
        log, events = capturing_logger()
        users = parse_server_users(USERS_YAML)
        resource = AuthConfigResource(
            users, reactor=SynchronousReactorThreads(), thread_pool=pool, log=log
        )
        return resource, events

    def test_unexpected_failure(self) -> None:
        """A bug answers 500 with a JSON error and is logged as TEST_WEBHOOK_FAILED."""
        resource, events = self.resource(_FailingPool())
        response = self.successResultOf(
            StubTreq(resource).post(  # type: ignore[attr-defined]
                "http://hook.test/password",
                data=json.dumps(password_request(METADATA, b"secret")).encode(),
            )
        )
        self.assertEqual(response.code, 500)
        self.assertEqual(
            json.loads(self.successResultOf(response.content())), {"error": "internal error"}
        )
        self.assertEqual(len(with_code(events, messages.TEST_WEBHOOK_FAILED.code)), 1)

    def test_client_gone(self) -> None:
        """A client that hung up before the check ended gets nothing written to it."""
        pool = _HeldPool()
        resource, events = self.resource(pool)
        request = DummyRequest([b"password"])
        request.method = b"POST"
        request.path = b"/password"
        request.content = io.BytesIO(json.dumps(password_request(METADATA, b"secret")).encode())
        self.assertEqual(resource.render(request), NOT_DONE_YET)
        request.processingFailed(Failure(ConnectionDone()))
        pool.finish_all()
        self.assertEqual((request.written, request.finished), ([], 0))
        self.assertEqual(len(with_code(events, messages.TEST_WEBHOOK_ANSWERED.code)), 1)
