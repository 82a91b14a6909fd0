"""Serving the test webhook server's resource with the gateway's own HTTP server.

The resource is served by :class:`~conch_container.httpserver.HTTPServerService`,
as the health endpoint is, so it gets the same bounds (a cap on open
connections, an idle timeout, 413 without reading it for a body over
``LIMITS.max_body``, a bare 500 when the resource fails), the
same ``HTTP_SERVER_*`` codes, and the same TLS settings, mutual TLS included.
This is the only place that knows how the resource reaches the network.
"""

from __future__ import annotations

from typing import Any

from conch_container import messages
from conch_container.config import ConfigError
from conch_container.config.http import HTTPServerConfig
from conch_container.config.schema import Context, parse_section
from conch_container.config.validate import validate_http_server
from conch_container.httpserver import HTTPServerService, Limits
from conch_container.log import CodeLogger
from conch_container.testing.authconfig.resource import MAX_REQUEST_BODY, AuthConfigResource

__all__ = ["LIMITS", "SERVICE_NAME", "server_config", "webhook_server_service"]

#: The service's name in log lines (``service`` field of the ``HTTP_SERVER_*`` events).
SERVICE_NAME = "test-webhook-server"

#: The bounds of the server. The body limit is the resource's own, so that the
#: site refuses an oversized body before the resource would. A gateway keeps a
#: few connections per webhook client and opens more for logins in parallel:
#: the connection cap leaves room for several gateways under load.
LIMITS = Limits(max_body=MAX_REQUEST_BODY, idle_timeout=30.0, max_connections=256)

#: The command's option for each key of the HTTP server block, for error messages.
_OPTIONS = {"listen": "--listen", "cert": "--cert", "key": "--key", "clientcacert": "--client-ca"}


def server_config(
    listen: str,
    *,
    cert: str | None = None,
    key: str | None = None,
    client_ca: str | None = None,
) -> HTTPServerConfig:
    """The HTTP server block for the given address and PEM files, checked as the gateway's are.

    ``cert``, ``key`` and ``client_ca`` name PEM files (or hold PEM text);
    the block holds their text. TLS is on with ``cert`` and ``key``;
    ``client_ca`` then requires clients to present a certificate signed by
    one of its CAs.

    :raises ValueError: naming the option, when the address is not
        ``host:port``, a file cannot be read, or only one of cert and key is given.
    """
    raw = {"listen": listen, "cert": cert, "key": key, "clientcacert": client_ca}
    try:
        config = parse_section(
            HTTPServerConfig, {k: v for k, v in raw.items() if v is not None}, Context(), ""
        )
        validate_http_server(config, "")
    except ConfigError as error:
        option = _OPTIONS.get(error.key_path, "--cert and --key")
        raise ValueError(f"{option}: {error.problem}") from None
    if config.clientcacert and not config.cert:
        raise ValueError("--client-ca: needs --cert and --key (mutual TLS is over HTTPS)")
    return config


def webhook_server_service(
    resource: AuthConfigResource,
    config: HTTPServerConfig,
    *,
    reactor: Any,
    log: CodeLogger | None = None,
) -> HTTPServerService:
    """A service serving ``resource`` on ``config.listen`` while it runs.

    Its start fires once the socket is bound (``CONFIG_SERVER_AVAILABLE`` is
    logged with the bound address, its ``address`` property has it), or fails
    with a :class:`~conch_container.errors.ContainerSSHError` after logging
    ``HTTP_LISTEN_FAILED``. Its stop closes the socket and every connection.
    The resource's bcrypt pool is started and stopped by its own
    :meth:`~AuthConfigResource.start` and :meth:`~AuthConfigResource.stop`.

    :raises TLSConfigError: when the TLS settings cannot be used (a file that
        is no certificate, a key that does not match it).
    """
    return HTTPServerService(
        SERVICE_NAME,
        config,
        resource,
        log=log if log is not None else CodeLogger("conch_container.testing.authconfig"),
        available=messages.CONFIG_SERVER_AVAILABLE,
        reactor=reactor,
        limits=LIMITS,
    )
