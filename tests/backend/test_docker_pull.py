"""Tests for conch_container.backend.docker.pull: pull decisions, names and credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.errors
import requests
from twisted.trial.unittest import SynchronousTestCase

from conch_container.backend.docker.engine.api import thd_pull
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.pull import (
    MISSING_IMAGE_USER_MESSAGE,
    PullFailure,
    PullPolicy,
    canonical_image_name,
    classify_pull_error,
    is_missing_image_error,
    is_permanent_pull_error,
    registry_auth,
)
from conch_container.errors import GENERIC_USER_MESSAGE


class PullPolicyTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """Policy names parse; empty means IfNotPresent; anything else is an error."""
        self.assertIs(PullPolicy.parse("Always"), PullPolicy.ALWAYS)
        self.assertIs(PullPolicy.parse("Never"), PullPolicy.NEVER)
        self.assertIs(PullPolicy.parse("IfNotPresent"), PullPolicy.IF_NOT_PRESENT)
        self.assertIs(PullPolicy.parse(""), PullPolicy.IF_NOT_PRESENT)
        self.assertRaises(ValueError, PullPolicy.parse, "always")

    def test_decisions(self) -> None:
        """Always pulls, Never does not, IfNotPresent pulls only a missing image."""
        self.assertTrue(PullPolicy.ALWAYS.should_pull())
        self.assertFalse(PullPolicy.NEVER.should_pull())
        self.assertFalse(PullPolicy.ALWAYS.needs_inspect)
        self.assertFalse(PullPolicy.NEVER.needs_inspect)
        self.assertTrue(PullPolicy.IF_NOT_PRESENT.needs_inspect)
        self.assertTrue(PullPolicy.IF_NOT_PRESENT.should_pull(present=False))
        self.assertFalse(PullPolicy.IF_NOT_PRESENT.should_pull(present=True))
        self.assertRaises(ValueError, PullPolicy.IF_NOT_PRESENT.should_pull)

    def test_latest_not_special(self) -> None:
        """IfNotPresent does not pull a present :latest image (ContainerSSH 0.6 behaviour)."""
        self.assertFalse(PullPolicy.IF_NOT_PRESENT.should_pull(present=True))


class NameTests(SynchronousTestCase):
    def test_canonical(self) -> None:
        """Short names get docker.io and library/; registry hosts are kept."""
        for image, name in (
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("containerssh/agent", "docker.io/containerssh/agent"),
            ("localhost:5000/x", "localhost:5000/x"),
            ("localhost/x", "localhost/x"),
            ("quay.io/a/b:1", "quay.io/a/b:1"),
            ("docker.io/library/busybox", "docker.io/library/busybox"),
        ):
            self.assertEqual(canonical_image_name(image), name)


class RegistryAuthTests(SynchronousTestCase):
    def test_keys(self) -> None:
        """Known keys are kept in lower case, empty and unknown ones dropped."""
        self.assertEqual(
            registry_auth(
                {"Username": "u", "password": "p", "serverAddress": "r", "email": "", "x": "y"}
            ),
            {"username": "u", "password": "p", "serveraddress": "r"},
        )

    def test_none(self) -> None:
        """No credentials give an empty object (anonymous, never the host's own)."""
        self.assertEqual(registry_auth(None), {})


class ErrorClassificationTests(SynchronousTestCase):
    def test_permanent(self) -> None:
        """Unauthorised, forbidden and not-found pulls are not retried."""
        self.assertTrue(is_permanent_pull_error(404, "whatever"))
        self.assertTrue(is_permanent_pull_error(401, ""))
        self.assertTrue(
            is_permanent_pull_error(
                500, "pull access denied for x, repository does not exist or may require login"
            )
        )
        self.assertTrue(is_permanent_pull_error(None, "unauthorized: authentication required"))
        self.assertTrue(is_permanent_pull_error(None, "manifest unknown"))

    def test_transient(self) -> None:
        """Network trouble is retried."""
        self.assertFalse(
            is_permanent_pull_error(
                500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup x: no such host'
            )
        )
        self.assertFalse(is_permanent_pull_error(None, "connection reset by peer"))


class AuthFieldTests(SynchronousTestCase):
    def test_auth_split(self) -> None:
        """``auth`` alone (base64 of user:password) is split: the engine ignores it."""
        self.assertEqual(
            registry_auth({"auth": "dXNlcjpwYTpzcw=="}),  # user:pa:ss
            {"auth": "dXNlcjpwYTpzcw==", "username": "user", "password": "pa:ss"},
        )

    def test_explicit_credentials_win(self) -> None:
        """Given username and password are kept as they are."""
        self.assertEqual(
            registry_auth({"auth": "dXNlcjpwYXNz", "username": "other", "password": "x"}),
            {"auth": "dXNlcjpwYXNz", "username": "other", "password": "x"},
        )

    def test_undecodable_auth_passed_on(self) -> None:
        """An ``auth`` that is not base64 of user:password is passed on untouched."""
        for value in ("not base64!", "bm9jb2xvbg=="):  # the second is "nocolon"
            self.assertEqual(registry_auth({"auth": value}), {"auth": value})


class ClassificationTests(SynchronousTestCase):
    def test_unauthorized(self) -> None:
        """The engine's words for refused credentials are permanent UNAUTHORIZED (HTTP 500)."""
        for message in (
            "unauthorized: authentication required",
            'Head "http://localhost:5000/v2/guest/manifests/t": no basic auth credentials',
            "pull access denied for x, repository does not exist or may require 'docker login': "
            "denied: requested access to the resource is denied",
            "unauthorized: incorrect username or password",
            "error: 403 Forbidden",
        ):
            self.assertIs(classify_pull_error(500, message), PullFailure.UNAUTHORIZED, message)
        self.assertIs(classify_pull_error(401, ""), PullFailure.UNAUTHORIZED)
        self.assertIs(classify_pull_error(403, ""), PullFailure.UNAUTHORIZED)

    def test_not_found(self) -> None:
        """Missing manifests, repositories and platforms are permanent NOT_FOUND."""
        for status, message in (
            (404, "manifest for localhost:5000/guest:x not found: manifest unknown"),
            (500, "manifest unknown: manifest unknown"),
            (None, "name unknown: repository name not known to registry"),
            (500, "no matching manifest for linux/arm64 in the manifest list entries"),
            (404, ""),
        ):
            self.assertIs(classify_pull_error(status, message), PullFailure.NOT_FOUND, message)

    def test_invalid(self) -> None:
        """A name the engine cannot parse is permanent INVALID."""
        self.assertIs(classify_pull_error(400, "whatever"), PullFailure.INVALID)
        self.assertIs(
            classify_pull_error(500, "invalid reference format: repository name must be lowercase"),
            PullFailure.INVALID,
        )

    def test_transient(self) -> None:
        """Network and registry trouble, and in-stream download failures, are retried."""
        for status, message in (
            (500, 'Get "http://localhost:5001/v2/": dial tcp 127.0.0.1:5001: connect: refused'),
            (500, "received unexpected HTTP status: 503 Service Unavailable"),
            (None, "unknown blob"),
            (None, "unexpected EOF"),
            (None, "toomanyrequests: You have reached your pull rate limit."),
            (None, "open /var/lib/docker/tmp/x: permission denied"),
        ):
            failure = classify_pull_error(status, message)
            self.assertIs(failure, PullFailure.TRANSIENT, message)
            self.assertFalse(failure.permanent)

    def test_user_messages(self) -> None:
        """Each permanent failure has its own message for the user; transient is generic."""
        messages = {failure: failure.user_message for failure in PullFailure}
        self.assertEqual(messages[PullFailure.TRANSIENT], GENERIC_USER_MESSAGE)
        self.assertEqual(len(set(messages.values())), len(messages))
        for message in messages.values():
            self.assertTrue(message.startswith("Failed to initialize SSH session"))

    def test_missing_image(self) -> None:
        """Only a 404 saying "No such image" is a missing image (not a missing network)."""
        self.assertTrue(is_missing_image_error(404, "No such image: x:latest"))
        self.assertFalse(is_missing_image_error(404, "network foo not found"))
        self.assertFalse(is_missing_image_error(500, "No such image: x:latest"))
        self.assertTrue(MISSING_IMAGE_USER_MESSAGE.startswith("Failed to initialize SSH session"))


class FakePullClient:
    """Stands in for docker-py's ``APIClient.pull`` (streamed, decoded)."""

    def __init__(self, events: list[Any] | None = None, error: Exception | None = None) -> None:
        self.events = events or []
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def pull(self, image: str, **kwargs: Any) -> Iterator[Any]:
        self.calls.append((image, kwargs))
        if self.error is not None:
            raise self.error
        return self._stream()

    def _stream(self) -> Iterator[Any]:
        for event in self.events:
            if isinstance(event, Exception):
                raise event
            yield event


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("pull", response=response, explanation=explanation)


class ThdPullTests(SynchronousTestCase):
    def pull(self, client: FakePullClient, auth: dict[str, str] | None = None) -> None:
        thd_pull(client, "localhost:5000/guest:t", auth or {}, None)  # type: ignore[arg-type]

    def test_success(self) -> None:
        """A stream without errors is a pull; the credentials go along as given, even empty."""
        client = FakePullClient([{"status": "Pulling from guest"}, {"status": "Status: done"}])
        self.pull(client)
        image, kwargs = client.calls[0]
        self.assertEqual(image, "localhost:5000/guest:t")
        # Not None: docker-py would use the host's own credentials then.
        self.assertEqual(kwargs["auth_config"], {})
        self.assertTrue(kwargs["stream"])
        self.assertTrue(kwargs["decode"])

    def test_error_in_stream(self) -> None:
        """An ``error`` inside a stream that began with HTTP 200 fails the pull."""
        client = FakePullClient(
            [
                {"status": "Pulling from guest", "id": "t"},
                {"status": "Downloading", "id": "0e2b869f1101"},
                {"errorDetail": {"message": "unknown blob"}, "error": "unknown blob"},
                {"status": "never read"},
            ]
        )
        error = self.assertRaises(EngineError, self.pull, client)
        self.assertEqual((error.message, error.status), ("unknown blob", None))

    def test_error_detail_only(self) -> None:
        """An ``errorDetail`` without ``error`` counts too; an HTTP-like code is kept."""
        client = FakePullClient([{"errorDetail": {"message": "denied", "code": 403}}])
        error = self.assertRaises(EngineError, self.pull, client)
        self.assertEqual((error.message, error.status), ("denied", 403))

    def test_http_error(self) -> None:
        """An engine answer with an HTTP error carries its status and explanation."""
        client = FakePullClient(error=_api_error(404, "manifest unknown"))
        error = self.assertRaises(EngineError, self.pull, client)
        self.assertEqual((error.message, error.status), ("manifest unknown", 404))

    def test_broken_stream(self) -> None:
        """A stream cut short or unreadable is an EngineError (retried), not a crash."""
        for failure in (
            requests.exceptions.ChunkedEncodingError("connection broken"),
            ValueError("Expecting value: line 1 column 1"),
        ):
            client = FakePullClient([{"status": "Pulling from guest"}, failure])
            error = self.assertRaises(EngineError, self.pull, client)
            self.assertIsNone(error.status)
