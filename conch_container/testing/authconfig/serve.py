"""Serving the test webhook server's resource: a plain ``twisted.web`` site on one endpoint.

This is the only place that knows how the resource reaches the network, so
that a fuller HTTP server (limits on connections and headers, its own TLS
settings) can replace it without touching the resource.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.ssl import CertificateOptions, PrivateCertificate
from twisted.web.resource import Resource
from twisted.web.server import Site

from conch_container.listener import LISTEN_BACKLOG

__all__ = ["REQUEST_TIMEOUT", "listen_address", "load_tls", "serve"]

#: Seconds a connection may stay idle, or a request take to arrive, before it is closed.
REQUEST_TIMEOUT = 30.0


def listen_address(listen: str) -> tuple[str, int]:
    """The host and port of a ``host:port`` address (IPv6 as ``[::1]:8080``).

    :raises ValueError: when it is not of that form.
    """
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not a host:port address: {listen!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


def load_tls(certificate_file: str, key_file: str) -> CertificateOptions:
    """Server TLS options from a PEM certificate (chain) file and its PEM key file.

    :raises OSError: when a file cannot be read.
    :raises ValueError: when they do not hold a certificate and its key.
    """
    with open(certificate_file, "rb") as f:
        certificate = f.read()
    with open(key_file, "rb") as f:
        key = f.read()
    try:
        options: CertificateOptions = PrivateCertificate.loadPEM(
            certificate + b"\n" + key
        ).options()
    except Exception as error:  # pyOpenSSL raises its own Error types, and ValueError
        raise ValueError(f"cannot use {certificate_file} with {key_file}: {error}") from None
    return options


def serve(
    reactor: Any,
    resource: Resource,
    listen: str,
    *,
    tls: CertificateOptions | None = None,
) -> Deferred[IListeningPort]:
    """Listen on ``listen`` (``host:port``) and serve ``resource`` there, over TLS if given.

    :return: fires with the listening port (stop it with ``stopListening``),
        or fails when the address cannot be bound.
    :raises ValueError: when ``listen`` is not a ``host:port`` address.
    """
    host, port = listen_address(listen)
    endpoint: IStreamServerEndpoint
    if tls is not None:
        endpoint = SSL4ServerEndpoint(reactor, port, tls, backlog=LISTEN_BACKLOG, interface=host)
    elif ":" in host:
        endpoint = TCP6ServerEndpoint(reactor, port, backlog=LISTEN_BACKLOG, interface=host)
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, backlog=LISTEN_BACKLOG, interface=host)
    site = Site(resource, reactor=reactor, timeout=REQUEST_TIMEOUT)
    site.displayTracebacks = False
    listening: Deferred[IListeningPort] = endpoint.listen(site)
    return listening
