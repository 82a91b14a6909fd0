"""Builds the authenticators the ``auth`` section asks for.

``method: ""`` disables a method; ``webhook`` and ``static`` are built here;
ContainerSSH's ``kerberos`` and ``oauth2`` are recognised but not available in
this version, which is a start-up error rather than a silent downgrade.
Clients and pools are shared where configurations are equal, so password and
public-key webhooks on the same server share one connection pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, gatherResults, maybeDeferred

from conch_container.auth.static import StaticAuthenticator
from conch_container.auth.webhook import (
    DEFAULT_AUTH_TIMEOUT,
    WebhookAuthenticator,
    WebhookAuthorizer,
)
from conch_container.config.http import HTTPClientConfig
from conch_container.interfaces import IAuthorizer, IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.log import CodeLogger
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.webhook.client import WebhookClient, WebhookConfigError

if TYPE_CHECKING:
    from conch_container.config import (
        AuthConfig,
        AuthWebhookClientConfig,
        PasswordAuthConfig,
        PublicKeyAuthConfig,
        StaticUsersConfig,
    )

_NOT_AVAILABLE = {"kerberos", "oauth2"}


class AuthConfigError(ValueError):
    """The ``auth`` section asks for something this version cannot build; names the option."""


@attrs.define
class Authenticators:
    """The authenticators in use, and the resources behind them.

    :ivar password: for the ``password`` SSH method, or ``None`` when disabled.
    :ivar public_key: for the ``publickey`` SSH method, or ``None``.
    :ivar authz: confirms every successful login, or ``None``.
    """

    password: IPasswordAuthenticator | None = None
    public_key: IPublicKeyAuthenticator | None = None
    authz: IAuthorizer | None = None
    _static: list[StaticAuthenticator] = attrs.field(factory=list)
    _clients: list[WebhookClient] = attrs.field(factory=list)

    def start(self) -> Deferred[Any]:
        """Start the static users' thread pools (HTTP pools need no start)."""
        return gatherResults([s.start() for s in self._static], consumeErrors=True)

    def stop(self) -> Deferred[Any]:
        """Stop thread pools and close HTTP connection pools; every one, even if some fail."""
        calls = [maybeDeferred(s.stop) for s in self._static]
        calls += [maybeDeferred(c.close) for c in self._clients]
        return DeferredList(calls, consumeErrors=True)


def _method(section: Any) -> str:
    """The ``method`` of an auth section (every section has one)."""
    return str(section.method or "")


def build_authenticators(
    auth: AuthConfig,
    *,
    reactor: Any,
    log: CodeLogger | None = None,
    http_agent: Any = None,
    thread_pool: Any = None,
    metrics: Metrics = NULL_METRICS,
) -> Authenticators:
    """Build what ``auth`` (the config's ``auth`` section) enables.

    Reads the static users files, so their errors surface at start-up.

    :param reactor: for HTTP, timers and thread results.
    :param http_agent: used by every webhook client instead of a real
        :class:`~twisted.web.client.Agent` (tests).
    :param thread_pool: used by static authenticators instead of their own pool (tests).
    :param metrics: where the webhook authenticators count their calls.
    :raises AuthConfigError: for an unknown or unavailable method or a bad webhook block.
    :raises ~conch_container.auth.static.StaticUsersError: for a bad users file.
    """
    log = log if log is not None else CodeLogger("conch_container.auth")
    built = Authenticators()
    clients: dict[HTTPClientConfig, WebhookClient] = {}
    statics: dict[str, StaticAuthenticator] = {}

    for name in ("keyboard_interactive", "gssapi"):
        method = _method(getattr(auth, name))
        if method:
            raise AuthConfigError(
                f"auth.{_yaml_name(name)}.method: {method!r} is not available in this "
                "version of conch-container"
            )

    def client_for(option: str, webhook: AuthWebhookClientConfig) -> WebhookClient:
        key = _client_key(webhook)
        if key not in clients:
            try:
                clients[key] = WebhookClient(
                    webhook, reactor=reactor, agent=http_agent, log=log.bind(module="auth")
                )
            except WebhookConfigError as e:
                raise AuthConfigError(f"{option}.webhook.{e}") from None
            built._clients.append(clients[key])
        return clients[key]

    def static_for(option: str, static: StaticUsersConfig) -> StaticAuthenticator:
        path = static.users_file
        if not path:
            raise AuthConfigError(f"{option}.static.usersFile: required for method static")
        if path not in statics:
            statics[path] = StaticAuthenticator.from_file(
                path, reactor=reactor, log=log.bind(module="auth"), thread_pool=thread_pool
            )
            built._static.append(statics[path])
        return statics[path]

    def webhook_authenticator(
        option: str, section: PasswordAuthConfig | PublicKeyAuthConfig
    ) -> WebhookAuthenticator:
        webhook = section.webhook
        if not webhook.url:
            raise AuthConfigError(f"{option}.webhook.url: required for method webhook")
        return WebhookAuthenticator(
            client_for(option, webhook),
            clock=reactor,
            log=log.bind(module="auth"),
            auth_timeout=_auth_timeout(webhook),
            metrics=metrics,
        )

    sections: tuple[tuple[str, str, PasswordAuthConfig | PublicKeyAuthConfig], ...] = (
        ("password", "auth.password", auth.password),
        ("public_key", "auth.publicKey", auth.public_key),
    )
    allowed = ("webhook", "static")
    for attribute, option, section in sections:
        method = _method(section)
        if not method:
            continue
        if method in _NOT_AVAILABLE:
            raise AuthConfigError(
                f"{option}.method: {method!r} is not available in this version of conch-container"
            )
        if method not in allowed:
            raise AuthConfigError(
                f"{option}.method: unknown method {method!r} (expected one of: "
                f"{', '.join(repr(m) for m in ('', *allowed))})"
            )
        authenticator: Any
        if method == "webhook":
            authenticator = webhook_authenticator(option, section)
        else:
            authenticator = static_for(option, section.static)
        setattr(built, attribute, authenticator)

    authz = auth.authz
    method = _method(authz)
    if method == "webhook":
        webhook = authz.webhook
        if not webhook.url:
            raise AuthConfigError("auth.authz.webhook.url: required for method webhook")
        built.authz = WebhookAuthorizer(
            client_for("auth.authz", webhook),
            clock=reactor,
            log=log.bind(module="auth"),
            auth_timeout=_auth_timeout(webhook),
            metrics=metrics,
        )
    elif method:
        raise AuthConfigError(
            f"auth.authz.method: unknown method {method!r} (expected one of: '', 'webhook')"
        )
    return built


def _auth_timeout(webhook: AuthWebhookClientConfig) -> float:
    return float(webhook.auth_timeout or DEFAULT_AUTH_TIMEOUT)


def _client_key(webhook: AuthWebhookClientConfig) -> HTTPClientConfig:
    """Equal HTTP client blocks share one client (``auth_timeout`` is not the client's)."""
    fields = attrs.fields(HTTPClientConfig)
    return HTTPClientConfig(**{f.name: getattr(webhook, f.name) for f in fields})


def _yaml_name(attribute: str) -> str:
    head, *rest = attribute.split("_")
    return head + "".join(part.capitalize() for part in rest)
