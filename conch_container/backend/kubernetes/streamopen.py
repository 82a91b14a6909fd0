"""Opening an exec or attach stream: the connection, TLS and the WebSocket handshake.

:func:`open_channel_stream` connects to the API server (TCP, or TLS with the
cluster's CA, client certificate and ``serverName``, as the control calls
use them), sends the upgrade with the ``Authorization`` header and both
channel subprotocols, and gives back the :class:`~.websocket.ChannelStream`
once the handshake is done, all within a deadline on the reactor's clock.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet import ssl
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint

from conch_container import messages
from conch_container.backend.kubernetes.channels import SUBPROTOCOLS
from conch_container.backend.kubernetes.connection import ClusterSettings
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.websocket import (
    MAX_MESSAGE,
    ChannelStream,
    Sink,
    StreamEvents,
)
from conch_container.backend.kubernetes.wstimers import unbatched
from conch_container.deferreds import DeadlineExceeded, with_deadline

_TLS_MINIMUM = ssl.TLSVersion.TLSv1_2


def tls_options(settings: ClusterSettings, hostname: str) -> Any:
    """Client TLS options as the control calls use them: the cluster's CA (or the
    system's trust), the client certificate, ``serverName``, TLS 1.2 at least;
    with ``insecure``, the same but the server's certificate is not verified.

    :raises KubernetesError: when the PEM material cannot be used.
    """
    try:
        trust = None
        pem = settings.pem
        if pem.ca:
            trust = ssl.trustRootFromCertificates(
                [
                    ssl.Certificate.loadPEM(c.public_bytes(Encoding.PEM))
                    for c in x509.load_pem_x509_certificates(pem.ca.encode("utf-8"))
                ]
            )
        client = None
        if pem.cert:
            client = ssl.PrivateCertificate.loadPEM(f"{pem.cert}\n{pem.key}")
        if settings.insecure:
            return _unverified(client)
        return ssl.optionsForClientTLS(
            settings.server_name or hostname,
            trustRoot=trust,
            clientCertificate=client,
            extraCertificateOptions={"raiseMinimumTo": _TLS_MINIMUM},
        )
    except Exception as e:  # pyOpenSSL and cryptography raise many kinds
        raise KubernetesError(
            messages.KUBERNETES_CONFIG_ERROR, f"unusable TLS settings for the API server: {e}"
        ) from None


def _unverified(client: Any) -> Any:
    """Options that accept any server certificate (``insecure``), still offering ``client``."""
    return ssl.CertificateOptions(
        privateKey=client.privateKey.original if client is not None else None,
        certificate=client.original if client is not None else None,
        verify=False,
        raiseMinimumTo=_TLS_MINIMUM,
    )


def _endpoint(reactor: Any, settings: ClusterSettings) -> tuple[IStreamClientEndpoint, str]:
    """The endpoint of the API server and the WebSocket URL prefix (``ws[s]://host:port``)."""
    url = urlsplit(settings.base_url)
    hostname = url.hostname or ""
    port = url.port or (443 if settings.tls else 80)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, hostname, port, timeout=max(settings.timeout, 0.1)
    )
    if settings.tls:
        endpoint = wrapClientTLS(tls_options(settings, hostname), endpoint)
    scheme = "wss" if settings.tls else "ws"
    return endpoint, f"{scheme}://{url.netloc}{url.path}"


async def open_channel_stream(
    reactor: Any,
    settings: ClusterSettings,
    path: str,
    *,
    stdout: Sink,
    stderr: Sink,
    events: StreamEvents,
    tty: bool,
    expect_pid: bool = False,
    timeout: float | None = None,
) -> ChannelStream:
    """Open the exec or attach stream at ``path`` (from :func:`~.channels.exec_path`).

    Output may reach the sinks as soon as the handshake is done, before this
    returns. Cancelling drops the connection.

    :param timeout: seconds for the connection and the handshake (the HTTP
        timeout if None).
    :raises KubernetesError: ``KUBERNETES_EXEC_FAILED`` when the stream could
        not be opened in time (refused, wrong protocol, no answer).
    """
    endpoint, prefix = _endpoint(reactor, settings)
    headers = {}
    authorization = settings.credentials.authorization()
    if authorization:
        headers["Authorization"] = authorization
    factory = WebSocketClientFactory(
        prefix + path, protocols=list(SUBPROTOCOLS), headers=headers, reactor=reactor
    )
    factory.setProtocolOptions(
        maxFramePayloadSize=MAX_MESSAGE,
        maxMessagePayloadSize=MAX_MESSAGE,
        # The deadline below bounds the handshake on the reactor's clock.
        openHandshakeTimeout=0,
    )
    unbatched(factory, reactor)

    def build() -> ChannelStream:
        stream = ChannelStream()
        stream.factory = factory
        stream.stdout, stream.stderr, stream.events = stdout, stderr, events
        stream.tty, stream.expect_pid = tty, expect_pid
        return stream

    factory.protocol = cast(Any, build)
    limit = settings.timeout if timeout is None else timeout
    stream: ChannelStream | None = None

    async def connect() -> ChannelStream:
        nonlocal stream
        connected = cast(ChannelStream, await endpoint.connect(factory))
        stream = connected
        await connected.is_open
        return connected

    try:
        opened = await with_deadline(reactor, limit, connect())
    except DeadlineExceeded:
        _drop(stream)
        raise _exec_failed(f"no answer within {limit:g} s", path) from None
    except CancelledError:
        _drop(stream)
        raise
    except KubernetesError:
        raise
    except Exception as e:
        _drop(stream)
        raise _exec_failed(str(e) or type(e).__name__, path) from None
    if opened._failed is not None:
        raise _exec_failed(opened._failed, path)
    return opened


def _drop(stream: ChannelStream | None) -> None:
    if stream is not None:
        stream.abortConnection()


def _exec_failed(reason: str, path: str) -> KubernetesError:
    return KubernetesError(
        messages.KUBERNETES_EXEC_FAILED,
        f"the stream could not be opened: {reason}",
        path=path.split("?", 1)[0],
    )
