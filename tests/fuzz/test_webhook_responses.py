"""Fuzzing what the authentication webhook answers: JSON documents and raw bytes.

``decode_auth_response`` (the password, public-key and authz answers) may
raise only ``ProtocolError``; a ``WebhookClient`` given any answer body with
status 200 yields an ``AuthResult`` or raises ``WebhookDecodeError``, the
error its callers retry on.
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

from hypothesis import example
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from conch_container.config import AuthWebhookClientConfig
from conch_container.log import CodeLogger
from conch_container.metadata import AuthResult, FileValue, MetadataValue
from conch_container.testing.webhook import memory_agent
from conch_container.webhook.client import WebhookClient, WebhookDecodeError
from conch_container.webhook.protocol import (
    ProtocolError,
    decode_auth_response,
    decode_files,
    decode_values,
    encode_files,
    encode_values,
)
from tests.fuzz import fuzz, note
from tests.fuzz.known_bugs import known_bug
from tests.fuzz.strategies import (
    INTERESTING_STRINGS,
    json_scalars,
    json_values,
    mutated_tree,
    pick,
    texts,
)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
metadata_values = st.builds(MetadataValue, texts, st.booleans())
#: What a program can be given: no NUL in the value.
variable_values = st.builds(
    MetadataValue, texts.filter(lambda text: "\x00" not in text), st.booleans()
)
file_values = st.builds(FileValue, st.binary(max_size=40), st.booleans())


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed answer, sometimes with fields the protocol does not define."""
    answer: dict[str, Any] = {"success": draw(st.booleans())}
    if draw(st.booleans()):
        answer["authenticatedUsername"] = draw(texts | st.none())
    if draw(st.booleans()):
        answer["metadata"] = encode_values(
            draw(st.dictionaries(texts, metadata_values, max_size=3))
        )
    if draw(st.booleans()):
        answer["environment"] = encode_values(
            draw(st.dictionaries(names, variable_values, max_size=3))
        )
    if draw(st.booleans()):
        answer["files"] = encode_files(draw(st.dictionaries(texts, file_values, max_size=3)))
    if draw(st.booleans()):
        # An unknown field: hypothesis also draws the module's own strings, so
        # a known name must be kept out or it would replace a valid field.
        answer[draw(texts.filter(lambda key: key not in _ANSWER_KEYS))] = draw(json_values)
    return answer


def as_json(value: Any) -> Any:
    """``value`` as ``json.loads`` would give it (mutations may add keys that are not strings)."""
    return json.loads(json.dumps(value))


_ANSWER_KEYS = (
    "success",
    "authenticatedUsername",
    "metadata",
    "environment",
    "files",
    "value",
    "sensitive",
)

mutated_answers = answers().flatmap(
    # Not deeper than json.dumps can write; deeper answers are in ``bodies``.
    lambda answer: mutated_tree(
        answer, _ANSWER_KEYS, max_depth=400, values=json_values, leaves=json_scalars
    ).map(lambda mutated: as_json(mutated.tree))
)


class DecodeTests(SynchronousTestCase):
    def check_result(self, document: Any, result: AuthResult) -> None:
        """A decoded answer says what the document says."""
        self.assertIsInstance(result, AuthResult)
        self.assertIs(result.success, document["success"])
        self.assertEqual(result.authenticated_username, document.get("authenticatedUsername") or "")
        for field in ("metadata", "environment", "files"):
            self.assertEqual(set(getattr(result, field)), set(document.get(field) or {}))
        for path, entry in result.files.items():
            given = document["files"][path].get("value") or ""
            self.assertEqual(base64.b64decode(given, validate=True), entry.value)

    def decode(self, document: Any) -> None:
        try:
            result = decode_auth_response(document)
        except ProtocolError as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        note("decoded")
        self.check_result(document, result)

    @fuzz(json_values, expect=("rejected",))
    def test_any_json(self, document: Any) -> None:
        """Any JSON value is an AuthResult or a ProtocolError."""
        self.decode(document)

    @fuzz(answers(), expect=("decoded",))
    def test_answers(self, document: Any) -> None:
        """A well-formed answer, unknown fields included, decodes to what it says."""
        self.check_result(document, decode_auth_response(document))
        note("decoded")

    @fuzz(mutated_answers, expect=("rejected",))
    @example({"success": True, "environment": {"A=B": {"value": "x"}}})
    @example({"success": True, "files": {"f": {"value": "\u00e9"}}})
    @example({"success": True, "metadata": {"m": {"value": 1}}})
    def test_mutated_answers(self, document: Any) -> None:
        """Well-formed answers with fields dropped, retyped, nested or added: only ProtocolError."""
        self.decode(document)

    @fuzz(
        st.dictionaries(texts, metadata_values, max_size=5),
        st.dictionaries(texts, file_values, max_size=5),
        expect=("round trip",),
    )
    def test_round_trip(
        self, values: dict[str, MetadataValue], files: dict[str, FileValue]
    ) -> None:
        """What the request encoders write, the response decoders read back."""
        self.assertEqual(decode_values(encode_values(values), "metadata"), values)
        self.assertEqual(decode_files(encode_files(files), "files"), files)
        note("round trip")


class _Answer(Resource):
    """Answers every POST with status 200 and the given body."""

    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return self.body


def _json_text(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(_json_text),
    mutated_answers.map(_json_text),
    answers().map(_json_text),
    pick(
        [
            b"",
            b"null",
            b"NaN",
            b'{"success": NaN}',
            b'{"success": Infinity}',
            b'{"success": true, "x": 1' + b"0" * 5000 + b"}",
            b"\xef\xbb\xbf" + b'{"success": true}',
            b'{"success": true}\x00',
            b'{"success": true, "success": false}',
            b'{"success": "\xed\xa0\x80"}',
            b'{"success": "\\ud800"}',
            b'{"success": true, "metadata": {"\\ud800": {"value": "x"}}}',
            b"[" * 500 + b"]" * 500,
            b'{"success": true, "metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
            b"[" * 100_000,
            INTERESTING_STRINGS[-1].encode("utf-8"),
        ]
    ),
)


class ClientTests(SynchronousTestCase):
    def post(self, body: bytes) -> Deferred[AuthResult]:
        events: list[dict[str, Any]] = []
        client = WebhookClient(
            AuthWebhookClientConfig(url="http://webhook.test/auth"),
            reactor=Clock(),
            agent=memory_agent(_Answer(body)),
            log=CodeLogger("tests.fuzz", observer=cast(ILogObserver, events.append)),
        )
        return Deferred.fromCoroutine(
            client.post("password", {"username": "u"}, decode=decode_auth_response)
        )

    @fuzz(bodies, expect=("decoded", "rejected"))
    def test_any_body(self, body: bytes) -> None:
        """Any answer body with status 200 is an AuthResult or a WebhookDecodeError."""
        result = self.post(body)
        outcome: list[Any] = []
        result.addBoth(outcome.append)
        self.assertEqual(len(outcome), 1, "the in-memory exchange did not finish")
        answer = outcome[0]
        if isinstance(answer, AuthResult):
            note("decoded")
            return
        error = answer.value
        if isinstance(error, WebhookDecodeError):
            self.assertTrue(error.reason)
            note("rejected")
            return
        name = known_bug(error)
        if name is None:
            answer.raiseException()
        note(f"known-bug:{name}")


class RegressionTests(SynchronousTestCase):
    """Minimal inputs of bugs the fuzz targets found."""

    def test_deeply_nested_answer(self) -> None:
        """An answer nested deeper than the JSON decoder recurses is a decode failure."""
        client = ClientTests("test_any_body")
        self.failureResultOf(client.post(b"[" * 100_000), WebhookDecodeError)

    def test_protocol_errors_are_value_errors(self) -> None:
        """A ValueError from ``decode`` is a decode failure to the client: ProtocolError is one."""
        self.assertTrue(issubclass(ProtocolError, ValueError))
