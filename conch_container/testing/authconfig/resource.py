"""The test webhook server's ``twisted.web`` resource: authentication, authorization, configuration.

One resource answers every endpoint the gateway calls, by the last segment
of the request path, so that it can be mounted anywhere:

- ``.../password`` and ``.../pubkey``: the authentication webhook
  (``auth.password.webhook.url`` and ``auth.publicKey.webhook.url`` are the
  part before it);
- ``.../authz``: the authorization webhook (``auth.authz.webhook.url``);
- ``.../config``, or the root path ``/``: the configuration server
  (``configserver.url`` is the whole URL, called without a suffix).

Credentials are checked by the embedded static authentication
(:class:`~conch_container.auth.static.StaticAuthenticator`), so bcrypt runs
on its small bounded thread pool with its cap on checks in flight; when
that cap is reached the answer is 503, which the gateway retries.

Answers are exactly the documented JSON. An unknown user is a refusal
(``success: false``), not an error; a request that is not the documented
JSON is answered with 400 and a short JSON error. Nothing secret is logged:
neither passwords nor the values of metadata, environment or files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from conch_container import messages
from conch_container.auth.static import StaticAuthenticator
from conch_container.errors import ContainerSSHError
from conch_container.log import CodeLogger
from conch_container.metadata import AuthResult, ConnectionMetadata
from conch_container.testing.authconfig.incoming import (
    BadRequest,
    connection_metadata,
    password_of,
    public_key_of,
)
from conch_container.testing.authconfig.users import ServerUser
from conch_container.webhook.protocol import (
    AUTHZ_PATH,
    PASSWORD_PATH,
    PUBLIC_KEY_PATH,
    encode_files,
    encode_values,
)

__all__ = ["CONFIG_PATH", "MAX_REQUEST_BODY", "AuthConfigResource"]

#: The last path segment the configuration server answers on.
CONFIG_PATH = "config"

#: The largest request body read. The gateway's requests are a few kilobytes
#: unless authentication returned files, which it sends back on later calls.
#: The command's site has the same limit and answers 413 before the body is
#: read (:mod:`~conch_container.testing.authconfig.serve`); the resource
#: checks it again for sites that do not, such as one mounted in a test.
MAX_REQUEST_BODY = 1024 * 1024

_Answer = dict[str, Any]
_Handler = Callable[[ConnectionMetadata, Mapping[str, Any]], Coroutine[Any, Any, _Answer]]


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AuthConfigResource(Resource):
    """Answers the gateway's webhook calls for the users of a users file.

    :param users: login name to :class:`~conch_container.testing.authconfig.users.ServerUser`.
    :param reactor: bcrypt results come back through it.
    :param thread_pool: where bcrypt runs (see
        :class:`~conch_container.auth.static.StaticAuthenticator`); by default
        a pool of ``max_threads`` that :meth:`start` starts and :meth:`stop`
        stops. Unit tests pass a
        :class:`~conch_container.testing.threads.NonThreadPool`.
    :param max_pending: password checks allowed in flight before 503.
    """

    isLeaf = True

    def __init__(
        self,
        users: Mapping[str, ServerUser],
        *,
        reactor: Any,
        log: CodeLogger | None = None,
        thread_pool: Any = None,
        max_threads: int = 2,
        max_pending: int = 64,
        max_body: int = MAX_REQUEST_BODY,
    ) -> None:
        super().__init__()
        self._users = dict(users)
        self._log = log if log is not None else CodeLogger("conch_container.testing.authconfig")
        self._authenticator = StaticAuthenticator(
            {name: user.static for name, user in self._users.items()},
            reactor=reactor,
            log=self._log,
            thread_pool=thread_pool,
            max_threads=max_threads,
            max_pending=max_pending,
        )
        self._max_body = max_body
        self._handlers: dict[str, _Handler] = {
            PASSWORD_PATH: self._password,
            PUBLIC_KEY_PATH: self._public_key,
            AUTHZ_PATH: self._authz,
            CONFIG_PATH: self._config,
            # The server's bare address as configserver.url.
            "": self._config,
        }

    def start(self) -> Deferred[None]:
        """Start the bcrypt thread pool."""
        return self._authenticator.start()

    def stop(self) -> Deferred[None]:
        """Stop the bcrypt thread pool. Idempotent; safe before :meth:`start`."""
        return self._authenticator.stop()

    # -- twisted.web ----------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        endpoint = request.path.rstrip(b"/").rpartition(b"/")[2].decode("ascii", "replace")
        try:
            if request.method != b"POST":
                raise _HTTPError(405, "only POST is answered")
            handler = self._handlers.get(endpoint)
            if handler is None:
                raise _HTTPError(404, "unknown endpoint")
            body = self._body(request)
            metadata = connection_metadata(body)
        except (_HTTPError, BadRequest) as error:
            return self._refuse(request, endpoint, error)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        log = self._log.bind(**metadata.log_fields(), endpoint=endpoint)
        answering = handler(metadata, body)
        Deferred.fromCoroutine(
            self._respond(request, log, metadata.effective_username, answering, gone)
        )
        return NOT_DONE_YET

    async def _respond(
        self,
        request: Request,
        log: CodeLogger,
        user: str,
        answering: Coroutine[Any, Any, _Answer],
        gone: list[bool],
    ) -> None:
        """Answer with what ``answering`` returns, or with the error it raises."""
        try:
            answer = await answering
        except (BadRequest, _HTTPError) as error:
            status, reason = _refusal(error)
            log.event(
                messages.TEST_WEBHOOK_BAD_REQUEST,
                "Refused a {endpoint} request with {status}: {reason}",
                status=status,
                reason=reason,
            )
            answer = {"error": reason}
        except ContainerSSHError:
            # Too many password checks in flight (already logged): the gateway retries.
            status, answer = 503, {"error": "too many password checks in progress, try again"}
        except Exception:
            log.failure(messages.TEST_WEBHOOK_FAILED, "Answering a {endpoint} request failed")
            status, answer = 500, {"error": "internal error"}
        else:
            status = 200
            log.event(
                messages.TEST_WEBHOOK_ANSWERED,
                "Answered {endpoint} for {user}: success {success}",
                user=user,
                success=answer.get("success", True),
            )
        if not gone:
            # The client may have given up meanwhile; then nobody is listening.
            self._write(request, status, answer)

    def _body(self, request: Request) -> Any:
        length = request.getHeader("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise _HTTPError(413, f"the body is larger than {self._max_body} bytes")
        raw = request.content.read(self._max_body + 1) if request.content is not None else b""
        if len(raw) > self._max_body:
            raise _HTTPError(413, f"the body is larger than {self._max_body} bytes")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise BadRequest("the request body is not JSON") from None

    def _refuse(self, request: Request, endpoint: str, error: Exception) -> bytes:
        status, reason = _refusal(error)
        self._log.event(
            messages.TEST_WEBHOOK_BAD_REQUEST,
            "Refused a {endpoint} request with {status}: {reason}",
            endpoint=endpoint,
            status=status,
            reason=reason,
        )
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return _json({"error": reason})

    @staticmethod
    def _write(request: Request, status: int, answer: _Answer) -> None:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.write(_json(answer))
        request.finish()

    # -- the endpoints ----------------------------------------------------------

    async def _password(self, metadata: ConnectionMetadata, body: Mapping[str, Any]) -> _Answer:
        password = password_of(body)
        result = await self._authenticator.authenticate_password(metadata, password)
        return self._auth_answer(metadata, result)

    async def _public_key(self, metadata: ConnectionMetadata, body: Mapping[str, Any]) -> _Answer:
        result = await self._authenticator.authenticate_public_key(metadata, public_key_of(body))
        return self._auth_answer(metadata, result)

    async def _authz(self, metadata: ConnectionMetadata, body: Mapping[str, Any]) -> _Answer:
        user = self._users.get(metadata.username)
        # The name authentication settled on must be this user's own.
        allowed = (
            user is not None
            and user.authorize
            and metadata.authenticated_username in ("", metadata.username)
        )
        if not allowed:
            return {"success": False}
        return {"success": True, "authenticatedUsername": metadata.username}

    async def _config(self, metadata: ConnectionMetadata, body: Mapping[str, Any]) -> _Answer:
        user = self._users.get(metadata.effective_username)
        return {"config": dict(user.config) if user is not None else {}}

    def _auth_answer(self, metadata: ConnectionMetadata, result: AuthResult) -> _Answer:
        if not result.success:
            return {"success": False}
        answer: _Answer = {"success": True, "authenticatedUsername": result.authenticated_username}
        if result.metadata:
            answer["metadata"] = encode_values(result.metadata)
        if result.environment:
            answer["environment"] = encode_values(result.environment)
        files = self._users[metadata.username].files
        if files:
            answer["files"] = encode_files(files)
        return answer


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _refusal(error: Exception) -> tuple[int, str]:
    """The status and short reason to answer a refused request with."""
    if isinstance(error, _HTTPError):
        return error.status, error.reason
    return 400, str(error)
