"""Authentication and authorization through ContainerSSH's webhook protocol.

:class:`WebhookAuthenticator` asks ``POST {url}/password`` and
``POST {url}/pubkey``; :class:`WebhookAuthorizer` asks ``POST {url}/authz``
after any successful authentication. A call that yields no decision
(connection failure, timeout, non-200 status, malformed answer) is retried
every 10 seconds until ``authTimeout`` (60 s by default) is spent, on the
schedule the configuration server's calls share
(:func:`~conch_container.webhook.retry.call_with_retries`); then the user is
told authentication is unavailable. All waiting runs on the injected clock, so
the whole schedule is testable with :class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from conch_container import messages
from conch_container.errors import AUTH_UNAVAILABLE_USER_MESSAGE, ContainerSSHError
from conch_container.interfaces import IAuthorizer, IPasswordAuthenticator, IPublicKeyAuthenticator
from conch_container.log import CodeLogger, Level
from conch_container.metadata import AuthResult, ConnectionMetadata
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.webhook import protocol
from conch_container.webhook.client import WebhookClient, WebhookError, WebhookStatusError
from conch_container.webhook.retry import (
    RETRY_INTERVAL,
    GaveUp,
    RetryPolicy,
    call_with_retries,
)

#: ContainerSSH's overall budget for one decision, retries included (``authTimeout``).
DEFAULT_AUTH_TIMEOUT = 60.0
_LABELS = {
    "password": "Password authentication",
    "pubkey": "Public key authentication",
    "authorization": "Authorization",
}


def _reason(failure: WebhookError) -> str:
    """The message code a failed attempt is counted and logged under."""
    if isinstance(failure, WebhookStatusError):
        return messages.AUTH_INVALID_STATUS.code
    return failure.code.code if failure.code is not None else messages.UNKNOWN_ERROR.code


class _RetryingCaller:
    """Calls one webhook endpoint until it decides or the budget is spent."""

    def __init__(
        self,
        client: WebhookClient,
        *,
        clock: IReactorTime,
        log: CodeLogger | None,
        auth_timeout: float,
        retry_interval: float,
        metrics: Metrics,
    ) -> None:
        self.client = client
        self._clock = clock
        self._log = log if log is not None else CodeLogger("conch_container.auth.webhook")
        self._auth_timeout = auth_timeout
        self._retry_interval = retry_interval
        self._metrics = metrics

    async def decide(
        self,
        metadata: ConnectionMetadata,
        path: str,
        body: dict[str, Any],
        authtype: str,
    ) -> AuthResult:
        url = self.client.url_for(path)
        log = self._log.bind(**metadata.log_fields(), authtype=authtype, url=url)
        if metadata.authenticated_username:
            log = log.bind(authenticatedUsername=metadata.authenticated_username)
        label = _LABELS[authtype]
        recorder = self._metrics.auth_webhook(authtype)
        retry = False

        async def attempt(remaining: float) -> AuthResult:
            log.event(messages.AUTH, "{method} request", method=label)
            recorder.request(retry)
            started = self._clock.seconds()
            try:
                result = await self.client.post(
                    path,
                    body,
                    decode=protocol.decode_auth_response,
                    timeout=min(self.client.timeout, remaining),
                    log=log,
                )
            except WebhookError as e:
                if isinstance(e, WebhookStatusError):
                    log.event(
                        messages.AUTH_INVALID_STATUS,
                        "The authentication server responded with an invalid status code: "
                        "{statusCode}",
                        statusCode=e.status,
                    )
                recorder.latency(self._clock.seconds() - started)
                # As ContainerSSH counts them: every attempt without an answer
                # is a soft failure, and the one after which it gives up is a
                # hard one as well.
                recorder.failure(False, retry, _reason(e))
                raise
            recorder.latency(self._clock.seconds() - started)
            recorder.decision(result.success, retry, metadata.remote_address)
            self._log_decision(log, label, result)
            return result

        def retrying(failure: WebhookError, delay: float) -> None:
            nonlocal retry
            retry = True
            log.event(
                messages.AUTH_BACKEND_ERROR,
                "{method} request to backend failed, retrying in {delay:g} seconds: {error}",
                level=Level.DEBUG,
                method=label,
                delay=delay,
                error=failure.reason,
                reason=_reason(failure),
            )

        policy = RetryPolicy(self._auth_timeout, self._retry_interval)
        try:
            return await call_with_retries(
                attempt, clock=self._clock, policy=policy, on_retry=retrying
            )
        except GaveUp as gave_up:
            failure = gave_up.last
        recorder.failure(True, retry, _reason(failure))
        log.event(
            messages.AUTH_BACKEND_ERROR,
            "{method} request to backend failed, giving up: {error}",
            method=label,
            error=failure.reason,
            reason=_reason(failure),
        )
        raise ContainerSSHError(
            messages.AUTH_BACKEND_ERROR,
            AUTH_UNAVAILABLE_USER_MESSAGE,
            f"Backend request for {label.lower()} failed, giving up: {failure.reason}",
            url=url,
            authtype=authtype,
        )

    @staticmethod
    def _log_decision(log: CodeLogger, label: str, result: AuthResult) -> None:
        # ContainerSSH logs these at debug: the SSH layer's SSH_AUTH_* events
        # are the ones operators see at info.
        if result.success:
            log.event(
                messages.AUTH_SUCCESSFUL,
                "{method} successful",
                level=Level.DEBUG,
                method=label,
            )
        else:
            log.event(
                messages.AUTH_FAILED,
                "{method} failed",
                level=Level.DEBUG,
                method=label,
            )


class _WebhookDecider:
    """Asks a webhook for decisions, with retries within ``authTimeout``.

    :param client: the HTTP client for the configured ``webhook`` block.
    :param clock: retries and the ``authTimeout`` deadline run on it.
    :param auth_timeout: the overall budget per decision, in seconds.
    :param metrics: where the requests, failures, latencies and decisions are counted.
    """

    def __init__(
        self,
        client: WebhookClient,
        *,
        clock: IReactorTime,
        log: CodeLogger | None = None,
        auth_timeout: float = DEFAULT_AUTH_TIMEOUT,
        retry_interval: float = RETRY_INTERVAL,
        metrics: Metrics = NULL_METRICS,
    ) -> None:
        self._caller = _RetryingCaller(
            client,
            clock=clock,
            log=log,
            auth_timeout=auth_timeout,
            retry_interval=retry_interval,
            metrics=metrics,
        )

    def close(self) -> Deferred[None]:
        """Close the HTTP client's pooled connections."""
        return self._caller.client.close()


@implementer(IPasswordAuthenticator, IPublicKeyAuthenticator)
class WebhookAuthenticator(_WebhookDecider):
    """Password and public-key authentication by webhook (``auth.*.method: webhook``).

    The parameters are those of :class:`_WebhookDecider`.
    """

    name = "webhook"

    def authenticate_password(
        self, metadata: ConnectionMetadata, password: bytes
    ) -> Deferred[AuthResult]:
        """Ask ``{url}/password`` (see :class:`~.interfaces.IPasswordAuthenticator`)."""
        body = protocol.password_request(metadata, password)
        return Deferred.fromCoroutine(
            self._caller.decide(metadata, protocol.PASSWORD_PATH, body, "password")
        )

    def authenticate_public_key(
        self, metadata: ConnectionMetadata, public_key: str
    ) -> Deferred[AuthResult]:
        """Ask ``{url}/pubkey`` (see :class:`~.interfaces.IPublicKeyAuthenticator`)."""
        body = protocol.public_key_request(metadata, public_key)
        return Deferred.fromCoroutine(
            self._caller.decide(metadata, protocol.PUBLIC_KEY_PATH, body, "pubkey")
        )


@implementer(IAuthorizer)
class WebhookAuthorizer(_WebhookDecider):
    """Authorization by webhook (``auth.authz.method: webhook``).

    The parameters are those of :class:`_WebhookDecider`.
    """

    name = "webhook"

    def authorize(self, metadata: ConnectionMetadata) -> Deferred[AuthResult]:
        """Ask ``{url}/authz``; see :class:`~conch_container.interfaces.IAuthorizer`."""
        body = protocol.authz_request(metadata)
        return Deferred.fromCoroutine(
            self._caller.decide(metadata, protocol.AUTHZ_PATH, body, "authorization")
        )
