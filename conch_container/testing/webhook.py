"""A ContainerSSH authentication webhook and configuration server for tests.

:class:`AuthWebhookResource` is the server side of the protocols the gateway
speaks (``POST .../password``, ``.../pubkey``, ``.../authz``, and the
configuration server at ``POST .../config``), backed by a dictionary of
:class:`WebhookUser`. It records every request it receives so a
test can assert the exact JSON, and it can be told to misbehave (:class:`Fault`:
be down, answer garbage, hang, answer slowly or with any status) for some or
all requests.

It works in memory, with no sockets::

    resource = AuthWebhookResource({"alice": WebhookUser(password="secret")})
    client = WebhookClient(config, reactor=clock, agent=memory_agent(resource))

and for real, on a loopback port, for end-to-end tests against a running
gateway::

    port, url = listen_tcp(reactor, resource)   # url: http://127.0.0.1:PORT
    ...
    await port.stopListening()

As a configuration server, configure ``configserver.url: {url}/config``; each
user's :attr:`WebhookUser.config` (and ``config_metadata``,
``config_environment``, ``config_files``) is the answer. The faults apply to
it as to the other endpoints; an invalid configuration is just a user whose
``config`` is invalid.

On a real port, a :class:`~conch_container.testing.webhook_site.WebhookSite`
can also behave like servers that are hard on keep-alive connections: an
HTTP/1.0 server, or one that closes connections left idle too long::

    site = WebhookSite(resource, keep_alive_timeout=1.0, clock=reactor)
    port, url = listen_tcp(reactor, site)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from treq.testing import RequestTraversalAgent
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from conch_container.metadata import FileValue, MetadataValue


def _values(value: Mapping[str, str | MetadataValue]) -> dict[str, MetadataValue]:
    return {k: v if isinstance(v, MetadataValue) else MetadataValue(v) for k, v in value.items()}


def _files(value: Mapping[str, bytes | FileValue]) -> dict[str, FileValue]:
    return {k: v if isinstance(v, FileValue) else FileValue(v) for k, v in value.items()}


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _key_text(line: str) -> str:
    """``type base64`` of an authorized_keys line or key string (comment dropped)."""
    return " ".join(line.split()[:2])


@attrs.frozen
class WebhookUser:
    """A user the test webhook knows.

    :ivar password: accepted on ``/password`` (``None``: password logins fail).
    :ivar authorized_keys: keys accepted on ``/pubkey`` (``type base64 [comment]``).
    :ivar authenticated_username: returned as ``authenticatedUsername``
        (default: the login name).
    :ivar metadata: returned on success; strings become non-sensitive values.
    :ivar environment: returned on success.
    :ivar files: returned on success (path to content).
    :ivar config: the configuration server's ``config`` for this user (JSON
        rules: durations in nanoseconds, Docker structures in Engine API names).
    :ivar config_metadata: the configuration server's ``metadata``.
    :ivar config_environment: the configuration server's ``environment``.
    :ivar config_files: the configuration server's ``files``.
    """

    password: str | bytes | None = None
    authorized_keys: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    authenticated_username: str | None = None
    metadata: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_values)
    environment: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_values)
    files: Mapping[str, FileValue] = attrs.field(factory=dict, converter=_files)
    config: Mapping[str, Any] = attrs.field(factory=dict)
    config_metadata: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_values)
    config_environment: Mapping[str, MetadataValue] = attrs.field(factory=dict, converter=_values)
    config_files: Mapping[str, FileValue] = attrs.field(factory=dict, converter=_files)

    def password_matches(self, password: bytes) -> bool:
        if self.password is None:
            return False
        expected = self.password.encode() if isinstance(self.password, str) else self.password
        return expected == password

    def key_matches(self, public_key: str) -> bool:
        wanted = _key_text(public_key)
        return any(_key_text(k) == wanted for k in self.authorized_keys)


@attrs.frozen
class Fault:
    """How the test webhook misbehaves.

    :ivar status: the HTTP status to answer with.
    :ivar body: a raw body to send instead of the protocol answer.
    :ivar headers: extra response headers (e.g. ``Location`` for redirects).
    :ivar delay: answer only after this many seconds on the resource's clock.
    :ivar hang: never answer (the request stays open until the client gives up).
    """

    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float | None = None
    hang: bool = False


#: The server is down: 503 with a text body.
DOWN = Fault(status=503, body=b"Service Unavailable\n")
#: A 200 answer that is not JSON.
GARBAGE = Fault(status=200, body=b"<html>this is not JSON</html>")
#: Never answers.
HANG = Fault(hang=True)


def status(code: int) -> Fault:
    """Answer every affected request with ``code`` and an empty JSON object."""
    return Fault(status=code, body=b"{}")


def slow(delay: float) -> Fault:
    """Answer correctly, but only after ``delay`` seconds (needs the resource's ``clock``)."""
    return Fault(delay=delay)


def config_answer(config: Any) -> Fault:
    """Answer the configuration server's request with ``{"config": config}``, whoever asks.

    With a configuration the gateway cannot use (an unknown key, a wrong
    type, a setting it cannot change per connection) this is the
    "invalid configuration" fault.
    """
    return Fault(status=200, body=json.dumps({"config": config}).encode("utf-8"))


def redirect(location: str, code: int = 307) -> Fault:
    """Redirect to ``location`` (relative or absolute)."""
    return Fault(status=code, body=b"", headers={"Location": location})


@attrs.frozen
class ReceivedRequest:
    """One request the test webhook received.

    :ivar endpoint: ``password``, ``pubkey``, ``authz``, or the last path segment.
    :ivar path: the full request path.
    :ivar body: the decoded JSON body (``None`` if it was not JSON).
    :ivar headers: request headers, names lower-cased, last value wins.
    """

    endpoint: str
    path: str
    method: str
    body: Any
    headers: Mapping[str, str]


@attrs.define(eq=False)
class _Pending:
    """A request waiting for a delayed answer, or for none."""

    request: Request
    call: IDelayedCall | None = None

    def cancel(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()


class AuthWebhookResource(Resource):
    """The server side of ContainerSSH's authentication webhook, for tests.

    Mount it anywhere: the endpoint is the last path segment, so both
    ``http://host:port/password`` and ``http://host:port/auth/password`` work.

    :param users: login name to :class:`WebhookUser`.
    :param authorize: decides ``/authz`` from the request JSON; by default a
        known ``username`` is allowed if ``authenticatedUsername`` is absent or
        is what ``/password`` and ``/pubkey`` return for that user.
    :param clock: needed for :func:`slow` faults.
    :ivar requests: every :class:`ReceivedRequest`, in arrival order.
    :ivar extra_fields: added to every protocol answer (to check that clients
        tolerate fields they do not know).
    """

    isLeaf = True

    def __init__(
        self,
        users: Mapping[str, WebhookUser] | None = None,
        *,
        authorize: Callable[[Mapping[str, Any]], bool] | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()
        self.users: dict[str, WebhookUser] = dict(users or {})
        self.authorize = authorize
        self.extra_fields: dict[str, Any] = {}
        self.requests: list[ReceivedRequest] = []
        self._clock = clock
        self._fault: Fault | None = None
        self._fault_count: int | None = None
        self._pending: list[_Pending] = []

    # -- test controls --------------------------------------------------------

    def inject(self, fault: Fault, count: int | None = None) -> None:
        """Misbehave as ``fault`` for the next ``count`` requests (``None``: until :meth:`heal`)."""
        if fault.delay is not None and self._clock is None:
            raise ValueError("a delayed answer needs AuthWebhookResource(clock=...)")
        self._fault = fault
        self._fault_count = count

    def heal(self) -> None:
        """Answer correctly again."""
        self._fault = None
        self._fault_count = None

    def bodies(self, endpoint: str | None = None) -> list[Any]:
        """The JSON bodies received, optionally only those for one endpoint."""
        return [r.body for r in self.requests if endpoint is None or r.endpoint == endpoint]

    @property
    def pending(self) -> int:
        """How many requests are waiting for a (delayed or never) answer."""
        return len(self._pending)

    def release(self) -> None:
        """Drop every waiting request's connection (for test cleanup)."""
        pending, self._pending = self._pending, []
        for entry in pending:
            entry.cancel()
            entry.request.loseConnection()

    # -- twisted.web ----------------------------------------------------------

    def render_POST(self, request: Request) -> bytes | int:
        path = request.path.decode("utf-8", "replace")
        endpoint = path.rstrip("/").rpartition("/")[2]
        raw = request.content.read() if request.content is not None else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        headers = {
            name.decode("latin-1").lower(): values[-1].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        self.requests.append(ReceivedRequest(endpoint, path, "POST", body, headers))

        fault = self._take_fault()
        if fault is not None and fault.body is not None:
            code, answer = fault.status, fault.body
        else:
            code, answer = self._answer(endpoint, body)
            if fault is not None and fault.status != 200:
                code = fault.status
        if fault is not None:
            for name, value in fault.headers.items():
                request.setHeader(name, value)
            if fault.hang or fault.delay is not None:
                return self._defer(request, code, answer, fault)
        request.setResponseCode(code)
        return answer

    def render_GET(self, request: Request) -> bytes:
        # Clients following a 301/302/303 redirect switch to GET, as Go does.
        path = request.path.decode("utf-8", "replace")
        endpoint = path.rstrip("/").rpartition("/")[2]
        self.requests.append(ReceivedRequest(endpoint, path, "GET", None, {}))
        request.setResponseCode(405)
        return b'{"error":"method not allowed"}'

    def _take_fault(self) -> Fault | None:
        fault = self._fault
        if fault is not None and self._fault_count is not None:
            self._fault_count -= 1
            if self._fault_count <= 0:
                self.heal()
        return fault

    def _defer(self, request: Request, code: int, answer: bytes, fault: Fault) -> int:
        pending = _Pending(request)

        def finish() -> None:
            self._pending.remove(pending)
            request.setResponseCode(code)
            request.write(answer)
            request.finish()

        def gone(_: object) -> None:
            # The client gave up (timeout) and closed the connection.
            if pending in self._pending:
                self._pending.remove(pending)
                pending.cancel()

        if not fault.hang:
            assert self._clock is not None
            pending.call = self._clock.callLater(fault.delay or 0.0, finish)
        self._pending.append(pending)
        request.notifyFinish().addErrback(gone)
        return NOT_DONE_YET

    def _answer(self, endpoint: str, body: Any) -> tuple[int, bytes]:
        if not isinstance(body, dict):
            return 400, b'{"error":"request body is not a JSON object"}'
        if endpoint == "password":
            result = self._password(body)
        elif endpoint == "pubkey":
            result = self._pubkey(body)
        elif endpoint == "authz":
            result = self._authz(body)
        elif endpoint == CONFIG_ENDPOINT:
            result = self._config(body)
        else:
            return 404, b'{"error":"unknown endpoint"}'
        result.update(self.extra_fields)
        return 200, json.dumps(result).encode("utf-8")

    def _password(self, body: Mapping[str, Any]) -> dict[str, Any]:
        username = str(body.get("username", ""))
        user = self.users.get(username)
        try:
            password = base64.b64decode(str(body.get("passwordBase64", "")), validate=True)
        except (binascii.Error, ValueError):
            return {"success": False}
        if user is None or not user.password_matches(password):
            return {"success": False}
        return self._success(username, user)

    def _pubkey(self, body: Mapping[str, Any]) -> dict[str, Any]:
        username = str(body.get("username", ""))
        user = self.users.get(username)
        if user is None or not user.key_matches(str(body.get("publicKey", ""))):
            return {"success": False}
        return self._success(username, user)

    def _authz(self, body: Mapping[str, Any]) -> dict[str, Any]:
        username = str(body.get("username", ""))
        authenticated = str(body.get("authenticatedUsername") or username)
        if self.authorize is not None:
            allowed = bool(self.authorize(body))
        else:
            user = self.users.get(username)
            allowed = user is not None and authenticated in (
                username,
                user.authenticated_username,
            )
        answer: dict[str, Any] = {"success": allowed}
        if allowed:
            answer["authenticatedUsername"] = authenticated
        return answer

    def _config(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # The user the gateway settled on, as ContainerSSH's servers key on it.
        username = str(body.get("authenticatedUsername") or body.get("username", ""))
        user = self.users.get(username)
        if user is None:
            return {"config": {}}
        answer: dict[str, Any] = {"config": dict(user.config)}
        _add_metadata(answer, user.config_metadata, user.config_environment, user.config_files)
        return answer

    @staticmethod
    def _success(username: str, user: WebhookUser) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "success": True,
            "authenticatedUsername": user.authenticated_username or username,
        }
        _add_metadata(answer, user.metadata, user.environment, user.files)
        return answer


#: The last path segment the configuration server answers on.
CONFIG_ENDPOINT = "config"


def _add_metadata(
    answer: dict[str, Any],
    metadata: Mapping[str, MetadataValue],
    environment: Mapping[str, MetadataValue],
    files: Mapping[str, FileValue],
) -> None:
    """Add the non-empty maps to an answer, in the protocol's JSON shape."""
    if metadata:
        answer["metadata"] = {
            k: {"value": v.value, "sensitive": v.sensitive} for k, v in metadata.items()
        }
    if environment:
        answer["environment"] = {
            k: {"value": v.value, "sensitive": v.sensitive} for k, v in environment.items()
        }
    if files:
        answer["files"] = {
            k: {"value": base64.b64encode(v.value).decode("ascii"), "sensitive": v.sensitive}
            for k, v in files.items()
        }


def memory_agent(resource: Resource) -> RequestTraversalAgent:
    """An in-memory :class:`~twisted.web.iweb.IAgent` serving ``resource`` (no sockets).

    Call its ``flush()`` after the resource answers a delayed request.
    """
    return RequestTraversalAgent(resource)


def listen_tcp(
    reactor: Any, resource: Resource | Site, *, interface: str = "127.0.0.1", port: int = 0
) -> tuple[IListeningPort, str]:
    """Serve ``resource`` (or a ready :class:`~twisted.web.server.Site`) on a real TCP port.

    :return: the listening port (stop it with ``stopListening()``) and the base
        URL to configure as the webhook ``url``.
    """
    site = resource if isinstance(resource, Site) else Site(resource)
    listening = reactor.listenTCP(port, site, interface=interface)
    address = listening.getHost()
    return listening, f"http://{address.host}:{address.port}"
