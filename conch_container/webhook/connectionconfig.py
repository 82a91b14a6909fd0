"""One connection's configuration and metadata, from the configuration server.

:class:`ConfigServerSource` asks the server
(:class:`~conch_container.webhook.configserver.ConfigServerClient`), merges the
answer's ``config`` over the static configuration
(:func:`~conch_container.config.perconnection.connection_config`: explicit
values take effect, fixed keys are refused, the whole is validated) and its
``metadata``, ``environment`` and ``files`` into the connection's metadata,
as an authenticator's answer is merged. The realm calls it after
authentication, before the backend connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from conch_container import messages
from conch_container.config import ConfigError
from conch_container.config.perconnection import connection_config
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError
from conch_container.log import CodeLogger
from conch_container.metrics.recorders import NULL_METRICS, Metrics
from conch_container.webhook.client import WebhookClient
from conch_container.webhook.configserver import ConfigServerClient
from conch_container.webhook.retry import RetryPolicy

if TYPE_CHECKING:
    from conch_container.config import AppConfig
    from conch_container.metadata import ConnectionMetadata


@attrs.frozen
class ConnectionSettings:
    """What a connection runs with once the configuration server answered.

    :ivar config: the connection's effective configuration.
    :ivar metadata: its metadata with the server's additions merged in.
    """

    config: AppConfig
    metadata: ConnectionMetadata


class ConfigServerSource:
    """The configuration server, as the realm uses it.

    :param base: the static configuration every answer is merged over.
    :param client: fetches the answers.
    """

    def __init__(self, base: AppConfig, client: ConfigServerClient) -> None:
        self.base = base
        self._client = client

    @classmethod
    def from_config(
        cls,
        config: AppConfig,
        *,
        reactor: IReactorTime,
        log: CodeLogger,
        agent: object = None,
        policy: RetryPolicy | None = None,
        metrics: Metrics = NULL_METRICS,
    ) -> ConfigServerSource | None:
        """The source ``config.configserver`` describes; None when its ``url`` is empty.

        :param agent: an HTTP agent for tests (see
            :class:`~conch_container.webhook.client.WebhookClient`).
        :param policy: the retry schedule; ContainerSSH's 60 s budget and
            10 s pauses by default (tests shorten them).
        :param metrics: where the calls are counted and timed.
        :raises ~conch_container.webhook.errors.WebhookConfigError: for a bad
            URL or TLS options.
        """
        server = config.configserver
        if not server.url:
            return None
        http = WebhookClient(server, reactor=reactor, agent=agent, log=log)
        client = ConfigServerClient(
            http,
            clock=reactor,
            transmit_sensitive=server.transmit_sensitive_metadata,
            policy=policy,
            recorder=metrics.config_webhook(),
        )
        return cls(config, client)

    def close(self) -> Deferred[None]:
        """Close the HTTP connections kept alive to the server."""
        return self._client.close()

    async def settings_for(
        self, metadata: ConnectionMetadata, log: CodeLogger
    ) -> ConnectionSettings:
        """The configuration and metadata of the connection ``metadata`` describes.

        :raises ContainerSSHError: ``CONFIG_BACKEND_ERROR`` when the server gave
            no usable answer in time; ``BACKEND_CONFIG_ERROR`` (logged here,
            naming the key path) when its configuration cannot be used.
        """
        answer = await self._client.fetch(metadata, log)
        try:
            config = connection_config(self.base, answer.config)
        except ConfigError as error:
            log.event(
                messages.BACKEND_CONFIG_ERROR,
                "The configuration server's answer is not usable: {reason}",
                reason=str(error),
                key=error.key_path,
            )
            raise ContainerSSHError(
                messages.BACKEND_CONFIG_ERROR,
                GENERIC_USER_MESSAGE,
                f"invalid configuration from the configuration server: {error}",
                key=error.key_path,
            ) from None
        for warning in config.warnings:
            # The file's own warnings were logged at start-up; these are the answer's
            # (an Engine API key this version does not know, passed on as written).
            if warning not in self.base.warnings:
                log.event(
                    warning.code, "{key}: {reason}", key=warning.key_path, reason=warning.message
                )
        return ConnectionSettings(config, metadata.merge(answer.additions))
