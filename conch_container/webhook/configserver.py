"""The configuration server client: ContainerSSH's per-user configuration webhook.

After authentication (and authorization) the gateway POSTs the connection's
authenticated metadata to ``configserver.url`` (the URL as it is, no path
added)::

    {"username": "alice", "authenticatedUsername": "alice",
     "remoteAddress": "192.0.2.1:40022", "connectionId": "<32 hex>",
     "clientVersion": "SSH-2.0-OpenSSH_9.2", "metadata": {...},
     "environment": {...}, "files": {...}}

and the server answers with a partial configuration and more metadata::

    {"config": {"docker": {...}, "security": {...}},
     "metadata": {...}, "environment": {...}, "files": {...}}

Entries marked sensitive are left out of the request unless
``configserver.transmitSensitiveMetadata`` is true, as ContainerSSH documents
(ContainerSSH itself sends them regardless). A call that gives no usable
answer is retried every 10 seconds within 60 seconds, as ContainerSSH does
(:mod:`~conch_container.webhook.retry`). Request bodies are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.errors import ContainerSSHError
from conch_container.log import CodeLogger, Level
from conch_container.metadata import AuthResult, ConnectionMetadata
from conch_container.metrics.recorders import NULL_WEBHOOK_RECORDER, WebhookRecorder
from conch_container.webhook import protocol
from conch_container.webhook.client import WebhookClient, WebhookError, WebhookStatusError
from conch_container.webhook.retry import GaveUp, RetryPolicy, call_with_retries

#: ContainerSSH's overall budget for fetching one connection's configuration (fixed, 60 s).
CONFIG_BUDGET = 60.0
#: What the client is told when no configuration could be fetched.
CONFIG_UNAVAILABLE_USER_MESSAGE = (
    "Your configuration is currently unavailable, please try again later."
)


# ---------------------------------------------------------------------------
# The documents


def config_request(metadata: ConnectionMetadata, transmit_sensitive: bool) -> dict[str, Any]:
    """The body of the configuration request: authenticated metadata, as ``/authz`` gets it.

    :param transmit_sensitive: whether entries marked sensitive are sent.
    """
    if not transmit_sensitive:
        metadata = attrs.evolve(
            metadata,
            metadata={k: v for k, v in metadata.metadata.items() if not v.sensitive},
            environment={k: v for k, v in metadata.environment.items() if not v.sensitive},
            files={k: v for k, v in metadata.files.items() if not v.sensitive},
        )
    return protocol.authenticated_metadata(metadata)


@attrs.frozen
class ConfigAnswer:
    """What a configuration server answered.

    :ivar config: the partial configuration (JSON rules), possibly empty.
    :ivar additions: the ``metadata``, ``environment`` and ``files`` to merge
        into the connection's, as an authenticator's answer is merged.
    """

    config: Mapping[str, Any]
    additions: AuthResult


def decode_config_response(document: Any) -> ConfigAnswer:
    """Read a configuration server's answer.

    ``config`` must be an object (absent or ``null``: nothing to change);
    ``metadata``, ``environment`` and ``files`` are read as in the
    authentication webhook's answers; other fields are ignored.

    :raises protocol.ProtocolError: when a documented field has the wrong type.
    """
    if not isinstance(document, dict):
        raise protocol.ProtocolError("response: expected an object")
    config = document.get("config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise protocol.ProtocolError("config: expected an object")
    return ConfigAnswer(
        config=config,
        additions=AuthResult(
            success=True,
            metadata=protocol.decode_values(document.get("metadata"), "metadata"),
            environment=protocol.decode_environment(document.get("environment"), "environment"),
            files=protocol.decode_files(document.get("files"), "files"),
        ),
    )


# ---------------------------------------------------------------------------
# The client


class ConfigServerClient:
    """Fetches one connection's configuration, with ContainerSSH's retries.

    :param client: the HTTP client for the ``configserver`` block.
    :param clock: retries and the overall budget run on it.
    :param transmit_sensitive: ``configserver.transmitSensitiveMetadata``.
    :param policy: the overall budget and the pause between attempts
        (ContainerSSH's 60 and 10 seconds by default).
    :param recorder: counts and times the attempts
        (``containerssh_config_server_*``).
    """

    def __init__(
        self,
        client: WebhookClient,
        *,
        clock: IReactorTime,
        transmit_sensitive: bool = False,
        policy: RetryPolicy | None = None,
        recorder: WebhookRecorder = NULL_WEBHOOK_RECORDER,
    ) -> None:
        self.client = client
        self._clock = clock
        self._recorder = recorder
        self._transmit_sensitive = transmit_sensitive
        self._policy = policy if policy is not None else RetryPolicy(CONFIG_BUDGET)

    def close(self) -> Deferred[None]:
        """Close the HTTP client's pooled connections."""
        return self.client.close()

    async def fetch(self, metadata: ConnectionMetadata, log: CodeLogger) -> ConfigAnswer:
        """The server's answer for the connection ``metadata`` describes.

        Cancelling the call (the client left) stops it, waiting or not.

        :raises ContainerSSHError: ``CONFIG_BACKEND_ERROR`` once the budget
            is spent without an answer.
        """
        url = self.client.url_for("")
        log = log.bind(url=url)
        body = config_request(metadata, self._transmit_sensitive)
        recorder, clock = self._recorder, self._clock
        retry = False

        async def attempt(remaining: float) -> ConfigAnswer:
            recorder.request(retry)
            started = clock.seconds()
            log.event(
                messages.CONFIG_REQUEST,
                "Fetching the configuration for {authenticatedUsername}",
                authenticatedUsername=metadata.effective_username,
            )
            try:
                return await self.client.post(
                    "",
                    body,
                    decode=decode_config_response,
                    timeout=min(self.client.timeout, remaining),
                    log=log,
                )
            except WebhookStatusError as e:
                log.event(
                    messages.CONFIG_INVALID_STATUS_CODE,
                    "The configuration server responded with an invalid status code: {statusCode}",
                    statusCode=e.status,
                )
                recorder.failure(False, retry, _reason(e))
                raise
            except WebhookError as e:
                recorder.failure(False, retry, _reason(e))
                raise
            finally:
                recorder.latency(clock.seconds() - started)

        def retrying(failure: WebhookError, delay: float) -> None:
            nonlocal retry
            retry = True
            log.event(
                messages.CONFIG_BACKEND_ERROR,
                "Configuration request failed, retrying in {delay:g} seconds: {error}",
                level=Level.DEBUG,
                delay=delay,
                error=failure.reason,
                reason=_reason(failure),
            )

        try:
            answer = await call_with_retries(
                attempt, clock=self._clock, policy=self._policy, on_retry=retrying
            )
        except GaveUp as gave_up:
            failure = gave_up.last
            recorder.failure(True, retry, _reason(failure))
            log.event(
                messages.CONFIG_BACKEND_ERROR,
                "Configuration request failed, giving up: {error}",
                error=failure.reason,
                reason=_reason(failure),
            )
            raise ContainerSSHError(
                messages.CONFIG_BACKEND_ERROR,
                CONFIG_UNAVAILABLE_USER_MESSAGE,
                f"the configuration server gave no usable answer: {failure.reason}",
                url=url,
            ) from None
        log.event(
            messages.CONFIG_RESPONSE,
            "Received the configuration for {authenticatedUsername}",
            authenticatedUsername=metadata.effective_username,
        )
        return answer


def _reason(failure: WebhookError) -> str:
    if isinstance(failure, WebhookStatusError):
        return messages.CONFIG_INVALID_STATUS_CODE.code
    return failure.code.code if failure.code is not None else messages.UNKNOWN_ERROR.code
