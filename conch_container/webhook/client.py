"""JSON over HTTP, the way ContainerSSH's webhook client speaks it.

One :class:`WebhookClient` per configured HTTP client block (``url``,
``allowRedirects``, ``timeout`` and the TLS options). Each call POSTs a JSON
document with ``Content-Type: application/json`` and
``Accept: application/json`` and returns the decoded JSON answer. Only status
200 is an answer; everything else raises a :class:`WebhookError` subclass that
carries the message code ContainerSSH uses for it, so callers (the auth and
config webhooks) can log and retry without knowing HTTP details.

Connections are kept alive by a
:class:`~conch_container.webhook.pool.WebhookConnectionPool`: it keeps only
connections the server keeps open, and sends a call again, once, when it went
out on one the server had closed meanwhile.

Request bodies are never logged: they carry passwords.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from hyperlink import DecodedURL, EncodedURL
from treq.client import HTTPClient
from treq.cookies import IndexableCookieJar
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.iweb import IAgent, IPolicyForHTTPS, IResponse

from conch_container import messages
from conch_container.log import CodeLogger, Level
from conch_container.shape import MAX_DEPTH, ShapeError, check_shape
from conch_container.webhook.bodies import BytesProducer, read_body
from conch_container.webhook.errors import (
    WebhookConfigError,
    WebhookConnectionError,
    WebhookDecodeError,
    WebhookEncodeError,
    WebhookError,
    WebhookInsecureRedirectError,
    WebhookRedirectError,
    WebhookStatusError,
    WebhookTimeoutError,
    describe_failure,
    is_cancellation,
)
from conch_container.webhook.pool import WebhookConnectionPool
from conch_container.webhook.tls import TLSConfigError, TLSSettings, WebhookTLSPolicy

if TYPE_CHECKING:
    from conch_container.config.http import HTTPClientConfig

T = TypeVar("T")

__all__ = [
    "WebhookClient",
    "WebhookConfigError",
    "WebhookConnectionError",
    "WebhookDecodeError",
    "WebhookEncodeError",
    "WebhookError",
    "WebhookInsecureRedirectError",
    "WebhookRedirectError",
    "WebhookStatusError",
    "WebhookTimeoutError",
    "join_url",
]

#: ContainerSSH's default per-call timeout (``timeout``), in seconds.
DEFAULT_TIMEOUT = 2.0
#: How many redirects a call follows when ``allowRedirects`` is on (Go's usual bound).
MAX_REDIRECTS = 10
#: The largest answer read; more is a connection failure, not an out-of-memory.
MAX_RESPONSE_SIZE = 16 * 1024 * 1024

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# ---------------------------------------------------------------------------
# URLs


def join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended, with exactly one slash between them.

    An empty ``path`` leaves ``base`` untouched (the config webhook calls the URL as is).
    """
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without ``user:password@`` and the Basic ``Authorization`` value for it.

    Go's HTTP client turns URL credentials into Basic authentication; a
    drop-in replacement must too.
    """
    parsed = EncodedURL.from_text(url)
    if not parsed.userinfo:
        return url, None
    user, _, password = parsed.userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return parsed.replace(userinfo="").to_text(), f"Basic {token}"


def _leaves_tls(source: str, target: str) -> bool:
    """Whether following a redirect from ``source`` to ``target`` drops from HTTPS to HTTP."""
    return (
        EncodedURL.from_text(source).scheme.lower() == "https"
        and EncodedURL.from_text(target).scheme.lower() == "http"
    )


def _validate_url(url: str) -> str:
    try:
        parsed = DecodedURL.from_text(url)
    except Exception as e:
        raise WebhookConfigError(f"url: invalid URL {url!r} ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookConfigError(f"url: not an http or https URL: {url!r}")
    return url


class _RefuseCookies(DefaultCookiePolicy):
    """Webhook calls are stateless: cookies a server sets are never sent back (as in Go)."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON value {name}")


def _identity(value: Any) -> Any:
    return value


#: How much of a key path a decode failure names; the keys are the server's text.
_MAX_REASON_PATH = 120


def _decode_answer(body: bytes) -> Any:
    """The JSON document in an answer body, of a shape every later walk of it can handle.

    :raises ValueError: for a body that is not such a document: not UTF-8
        (UnicodeDecodeError), not JSON, ``NaN`` or ``Infinity``, an integer
        beyond Python's 4300-digit conversion limit (a plain ValueError from
        ``int()``), or too deep or too large (ShapeError).
    """
    try:
        answer = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        # The C decoder recurses once per nesting level, the Python one too.
        raise ValueError(f"the answer is nested more than {MAX_DEPTH} levels deep") from None
    try:
        # The config webhook's answer is a whole configuration, which the
        # config code walks recursively.
        check_shape(answer)
    except ShapeError as e:
        where = e.path if len(e.path) <= _MAX_REASON_PATH else e.path[:_MAX_REASON_PATH] + "..."
        raise ValueError(f"{where or '(top)'}: {e.problem}") from None
    return answer


# ---------------------------------------------------------------------------
# The client


class WebhookClient:
    """POSTs JSON to one webhook server.

    :param config: an HTTP client block: ``url`` and optionally
        ``allow_redirects``, ``timeout`` and the TLS options (``cacert``,
        ``cert``, ``key``, ``tls_version``, ``curves``, ``cipher``).
    :param reactor: the reactor (in tests a :class:`~twisted.internet.task.Clock`
        suffices when ``agent`` is given); per-call timeouts run on it.
    :param agent: an :class:`~twisted.web.iweb.IAgent` (for example
        :class:`treq.testing.RequestTraversalAgent`) or a treq-like client such as
        :class:`treq.testing.StubTreq`. Without it the client builds its own
        :class:`~twisted.web.client.Agent` with a
        :class:`~conch_container.webhook.pool.WebhookConnectionPool`, which
        :meth:`close` closes.
    :param log: where ``HTTP_CLIENT_*`` events go.
    :raises WebhookConfigError: for a bad URL or TLS options.
    """

    def __init__(
        self,
        config: HTTPClientConfig,
        *,
        reactor: Any,
        agent: Any = None,
        log: CodeLogger | None = None,
        max_redirects: int = MAX_REDIRECTS,
        max_response_size: int = MAX_RESPONSE_SIZE,
    ) -> None:
        self.url = _validate_url(str(config.url))
        self._allow_redirects = config.allow_redirects
        self.timeout = float(config.timeout or DEFAULT_TIMEOUT)
        self._reactor = reactor
        self._log = log if log is not None else CodeLogger("conch_container.webhook")
        self._max_redirects = max_redirects
        self._max_response_size = max_response_size
        self._pool: WebhookConnectionPool | None = None
        self._http: Any
        if agent is None:
            self._pool = WebhookConnectionPool(reactor, log=self._log)
            agent = Agent(
                reactor,
                contextFactory=self._tls_policy(config),
                connectTimeout=self.timeout,
                pool=self._pool,
            )
        if IAgent.providedBy(agent):
            self._http = HTTPClient(
                agent,
                cookiejar=IndexableCookieJar(policy=_RefuseCookies()),
                data_to_body_producer=BytesProducer,
            )
        else:
            self._http = agent

    def _tls_policy(self, config: HTTPClientConfig) -> IPolicyForHTTPS:
        settings = TLSSettings.from_config(config)
        if self.url.startswith("https:"):
            try:
                return WebhookTLSPolicy(settings)
            except TLSConfigError as e:
                raise WebhookConfigError(str(e)) from None
        # TLS options only apply to https URLs (as in ContainerSSH); an http
        # webhook still needs a verifying policy should it redirect to https.
        try:
            return WebhookTLSPolicy(settings)
        except TLSConfigError:
            return WebhookTLSPolicy(TLSSettings())

    def url_for(self, path: str) -> str:
        """The URL a call to ``path`` goes to, without credentials (for logs)."""
        return _split_credentials(join_url(self.url, path))[0]

    def close(self) -> Deferred[None]:
        """Close pooled connections (only those of a pool this client built). Idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        closed: Deferred[None] = pool.closeCachedConnections()
        return closed

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        decode: Callable[[Any], T] = _identity,
        timeout: float | None = None,
        log: CodeLogger | None = None,
    ) -> T:
        """POST ``body`` as JSON to the base URL joined with ``path``.

        :param decode: turns the decoded JSON into the caller's type; a
            ``ValueError``, ``TypeError`` or ``KeyError`` from it is a decode failure.
        :param timeout: this call's limit in seconds, redirects and body
            included; the configured ``timeout`` by default.
        :param log: a logger bound to the caller's context.
        :return: ``decode`` applied to the answer of a status-200 response.
        :raises WebhookError: every failure, as the subclass naming it.
        """
        log = log if log is not None else self._log
        url = self.url_for(path)
        try:
            payload = json.dumps(
                body, ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode("utf-8")
        except (TypeError, ValueError) as e:
            failed = WebhookEncodeError(f"BUG: HTTP request encoding failed: {e}", url=url)
            log.event(messages.HTTP_CLIENT_ENCODE_FAILED, "{reason}", reason=failed.reason, url=url)
            raise failed from None

        limit = self.timeout if timeout is None else timeout

        def timed_out(result: object, seconds: float) -> Failure:
            return Failure(WebhookTimeoutError(f"no response within {seconds:g}s", url=url))

        exchange = Deferred.fromCoroutine(self._exchange(join_url(self.url, path), payload, log))
        exchange.addTimeout(max(limit, 0.0), self._reactor, onTimeoutCancel=timed_out)
        try:
            answer = await exchange
        except WebhookConnectionError as e:
            # The callers retry and report; a single attempt's failure is detail.
            log.event(
                messages.HTTP_CLIENT_CONNECTION_FAILED,
                "HTTP request to {url} failed: {reason}",
                level=Level.DEBUG,
                url=url,
                reason=e.reason,
            )
            raise
        try:
            return decode(answer)
        except (ValueError, TypeError, KeyError) as e:
            error = WebhookDecodeError(f"failed to decode HTTP response: {e}", url=url)
            log.event(
                messages.HTTP_CLIENT_DECODE_FAILED,
                "{reason}",
                level=Level.DEBUG,
                reason=error.reason,
                url=url,
            )
            raise error from None

    async def _exchange(self, url: str, payload: bytes, log: CodeLogger) -> Any:
        method = "POST"
        data: bytes | None = payload
        for hop in range(self._max_redirects + 1):
            request_url, authorization = _split_credentials(url)
            response = await self._send(method, request_url, data, authorization, log)
            location = response.headers.getRawHeaders(b"location", [None])[0]
            if response.code not in _REDIRECT_STATUSES or location is None:
                break
            await self._read(response, request_url)
            target = EncodedURL.from_text(request_url).click(location.decode("latin-1")).to_text()
            shown, _ = _split_credentials(target)
            if not self._allow_redirects:
                log.event(
                    messages.HTTP_CLIENT_REDIRECTS_DISABLED,
                    "Redirects disabled, server tried to redirect to {redirect}",
                    url=request_url,
                    redirect=shown,
                )
                raise WebhookRedirectError(
                    f"redirects disabled, server tried to redirect to {shown}", url=request_url
                )
            if _leaves_tls(request_url, target):
                # Go follows such a redirect and resends the body (a password)
                # in clear to whatever host the redirect names; never do that.
                log.event(
                    messages.HTTP_CLIENT_REDIRECTS_DISABLED,
                    "Not following the redirect from {url} to {redirect}: it leaves HTTPS for "
                    "plain HTTP, which would send the request unencrypted",
                    url=request_url,
                    redirect=shown,
                )
                raise WebhookInsecureRedirectError(
                    f"refused a redirect from https to plain http ({shown})", url=request_url
                )
            if hop == self._max_redirects:
                raise WebhookRedirectError(
                    f"stopped after {self._max_redirects} redirects", url=request_url
                )
            log.event(messages.HTTP_CLIENT_REDIRECT, "HTTP redirect to {redirect}", redirect=shown)
            if response.code in (301, 302, 303):
                # Go turns these into a GET without a body; 307 and 308 repeat the POST.
                method, data = "GET", None
            url = target

        body = await self._read(response, request_url)
        if response.code != 200:
            raise WebhookStatusError(response.code, url=request_url)
        try:
            return _decode_answer(body)
        except ValueError as e:
            # The reason names the answer's problem, never the request (it holds passwords).
            error = WebhookDecodeError(f"failed to decode HTTP response: {e}", url=request_url)
            log.event(
                messages.HTTP_CLIENT_DECODE_FAILED,
                "{reason}",
                level=Level.DEBUG,
                reason=error.reason,
                url=request_url,
                statusCode=response.code,
            )
            raise error from None

    async def _send(
        self,
        method: str,
        url: str,
        data: bytes | None,
        authorization: str | None,
        log: CodeLogger,
    ) -> IResponse:
        headers = {b"Accept": [b"application/json"]}
        if data is not None:
            headers[b"Content-Type"] = [b"application/json"]
        if authorization is not None:
            headers[b"Authorization"] = [authorization.encode("ascii")]
        log.event(
            messages.HTTP_CLIENT_REQUEST, "HTTP {method} request to {url}", method=method, url=url
        )
        try:
            response: IResponse = await self._http.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                unbuffered=True,
                reactor=self._reactor,
            )
        except Exception:
            failure = Failure()
            if is_cancellation(failure):
                raise CancelledError() from None
            raise WebhookConnectionError(describe_failure(failure), url=url) from None
        log.event(
            messages.HTTP_CLIENT_RESPONSE,
            "HTTP response with status {statusCode}",
            url=url,
            statusCode=response.code,
        )
        return response

    async def _read(self, response: IResponse, url: str) -> bytes:
        try:
            return await read_body(response, self._max_response_size)
        except Exception:
            failure = Failure()
            if is_cancellation(failure):
                raise CancelledError() from None
            raise WebhookConnectionError(
                f"reading the response from {url} failed: {describe_failure(failure)}", url=url
            ) from None
