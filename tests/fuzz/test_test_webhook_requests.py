"""Fuzzing what the test webhook server is sent: request bodies for every endpoint.

Whatever body arrives, ``AuthConfigResource`` answers 200 with the protocol's
JSON or 400 (413 when too large) with a short JSON error: never 500, never an
exception, and only the documented fields.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from conch_container.testing.authconfig import AuthConfigResource, parse_server_users
from conch_container.testing.threads import NonThreadPool, SynchronousReactorThreads
from conch_container.webhook.protocol import (
    authz_request,
    password_request,
    pending_metadata,
    public_key_request,
)
from tests.fuzz import fuzz, note
from tests.fuzz.strategies import json_scalars, json_values, mutated_tree, pick
from tests.fuzz.test_webhook_responses import as_json
from tests.testing.authconfig_support import KEY, METADATA, USERS_YAML
from tests.webhook.support import capturing_logger

_REQUESTS = {
    "password": password_request(METADATA, b"secret"),
    "pubkey": public_key_request(METADATA, KEY),
    "authz": authz_request(METADATA),
    "config": pending_metadata(METADATA),
}
_REQUEST_KEYS = (
    "username",
    "remoteAddress",
    "connectionId",
    "clientVersion",
    "authenticatedUsername",
    "metadata",
    "environment",
    "files",
    "passwordBase64",
    "publicKey",
    "value",
    "sensitive",
)
#: The fields each answer may have.
_ANSWER_FIELDS = {
    200: {"success", "authenticatedUsername", "metadata", "environment", "files", "config"},
    400: {"error"},
    413: {"error"},  # a mutation may make the body huge
}

endpoints = pick(sorted(_REQUESTS))
mutated_requests = endpoints.flatmap(
    lambda endpoint: mutated_tree(
        _REQUESTS[endpoint], _REQUEST_KEYS, max_depth=400, values=json_values, leaves=json_scalars
    ).map(lambda mutated: (endpoint, json.dumps(as_json(mutated.tree)).encode()))
)
raw_requests = st.tuples(endpoints, st.binary(max_size=200))


class RequestTests(SynchronousTestCase):
    def setUp(self) -> None:
        log, _ = capturing_logger()
        resource = AuthConfigResource(
            parse_server_users(USERS_YAML),
            reactor=SynchronousReactorThreads(),
            thread_pool=NonThreadPool(),
            log=log,
        )
        self.treq = StubTreq(resource)

    def answer(self, endpoint: str, body: bytes) -> None:
        response = self.successResultOf(
            self.treq.post(f"http://hook.test/{endpoint}", data=body)  # type: ignore[attr-defined]
        )
        answer = json.loads(self.successResultOf(response.content()))
        self.assertIn(response.code, _ANSWER_FIELDS)
        self.assertIsInstance(answer, dict)
        self.assertLessEqual(set(answer), _ANSWER_FIELDS[response.code])
        note("answered" if response.code == 200 else "refused")

    @fuzz(mutated_requests, expect=("answered", "refused"))
    def test_mutated_requests(self, request: tuple[str, bytes]) -> None:
        """Well-formed requests with fields dropped, retyped or added: never 500."""
        self.answer(*request)

    @fuzz(raw_requests, expect=("refused",))
    def test_any_bytes(self, request: tuple[str, bytes]) -> None:
        """Arbitrary bytes as the body: 400 unless they happen to be a valid request."""
        self.answer(*request)
