"""Where the API server is, how to trust it and how to authenticate: :class:`ClusterSettings`.

Three sources, tried in this order (by :func:`.sources.thd_resolve`):

1. ``kubernetes.connection.kubeconfig`` (this project's extension): a
   kubeconfig file and one of its contexts (:mod:`.kubeconfig`);
2. in-cluster discovery (this project's extension): when the connection
   section is left at its defaults and ``KUBERNETES_SERVICE_HOST`` is set, as
   in every pod, the service account's token (followed as it rotates), CA
   certificate and namespace, as client-go's ``InClusterConfig`` does;
3. the ContainerSSH keys: ``host`` and ``path``, ``bearerToken`` or
   ``bearerTokenFile``, ``cert``/``key`` or ``certFile``/``keyFile``,
   ``cacert`` or ``cacertFile``, ``serverName``, ``username``/``password``.

A ``host`` without a scheme gets ``https`` when any TLS material or a
``serverName`` is configured and ``http`` otherwise: client-go's rule, which
ContainerSSH inherits. Resolving reads files, so the ``thd_*`` functions run
on the backend's pool. Every error names the configuration key it is about.

The official client wants files for its TLS material; :func:`thd_api_client`
writes inline PEM into a private temporary directory, removed by
:meth:`Cluster.thd_close`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import urllib3
from kubernetes.client import ApiClient, Configuration

from conch_container.backend.files import write_private
from conch_container.backend.kubernetes.credentials import Credentials, TokenFileError
from conch_container.backend.kubernetes.errors import ClusterConfigError
from conch_container.config.kubernetes import KubernetesConnectionConfig
from conch_container.config.values import is_pem

#: Where a pod finds its service account's credentials.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_HOST = "kubernetes.default.svc"
#: The most of a PEM file that is read.
MAX_PEM_FILE = 1024 * 1024
#: client-go's defaults, used when ``qps`` or ``burst`` is 0.
DEFAULT_QPS = 5.0
DEFAULT_BURST = 10


@attrs.frozen
class PemMaterial:
    """The CA certificate and the client certificate and key, as PEM text.

    The text is left out of ``repr`` (the key must never reach a log line);
    ``*_file`` name the file a value was read from, if it came from one, so
    that the official client is given that file instead of a copy.
    """

    ca: str = attrs.field(default="", repr=False)
    cert: str = attrs.field(default="", repr=False)
    key: str = attrs.field(default="", repr=False)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@attrs.frozen
class ClusterSettings:
    """One API server, resolved: its address, trust, client certificate and credentials.

    :ivar base_url: ``scheme://host[:port][prefix]``; request paths such as
        ``/api/v1/...`` are appended to it.
    :ivar namespace: the namespace the source suggests (in-cluster, kubeconfig), if any.
    :ivar insecure: do not verify the API server's certificate (only a
        translated ``kuberun`` section with ``allowInsecure`` sets it).
    """

    base_url: str
    credentials: Credentials = attrs.field(repr=False)
    server_name: str = ""
    pem: PemMaterial = PemMaterial()
    namespace: str = ""
    qps: float = DEFAULT_QPS
    burst: int = DEFAULT_BURST
    timeout: float = 15.0
    insecure: bool = False

    @property
    def tls(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"


def base_url(host: str, path: str, *, tls_default: bool, key_path: str) -> str:
    """The base URL of ``host`` (``host[:port]`` or a URL) and the API ``path`` (``.../api``).

    :raises ClusterConfigError: for a scheme other than http(s), no host, or
        a path that does not end in ``/api``.
    """
    if "://" not in host:
        host = ("https://" if tls_default else "http://") + host
    url = urlsplit(host)
    if url.scheme not in ("http", "https"):
        raise ClusterConfigError(f"{key_path}.host", f"unsupported scheme {url.scheme!r}")
    if not url.hostname:
        raise ClusterConfigError(f"{key_path}.host", f"no host name in {host!r}")
    prefix = url.path.rstrip("/")
    api_path = (path or "/api").rstrip("/")
    if not api_path.endswith("/api"):
        raise ClusterConfigError(f"{key_path}.path", f"{path!r} must end in /api")
    return f"{url.scheme}://{url.netloc}{prefix}{api_path[: -len('/api')]}"


def read_pem(path: str, key_path: str) -> str:
    """The PEM text in ``path``.

    :raises ClusterConfigError: naming ``key_path`` when it cannot be read or is not PEM.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PEM_FILE + 1)
    except OSError as e:
        raise ClusterConfigError(key_path, f"cannot read {path}: {e.strerror or e}") from e
    text = data.decode("utf-8", "replace")
    if len(data) > MAX_PEM_FILE or not is_pem(text):
        raise ClusterConfigError(key_path, f"{path} does not hold PEM text")
    return text


def credentials_for(key_path: str, **kwargs: str) -> Credentials:
    """:class:`Credentials` of ``kwargs``; an unreadable token file names ``key_path``."""
    try:
        return Credentials(**kwargs)
    except TokenFileError as e:
        raise ClusterConfigError(key_path, str(e)) from None


def rate_of(connection: KubernetesConnectionConfig) -> dict[str, Any]:
    """``qps`` and ``burst``, 0 meaning client-go's defaults."""
    return {
        "qps": connection.qps or DEFAULT_QPS,
        "burst": connection.burst or DEFAULT_BURST,
    }


def is_default_connection(connection: KubernetesConnectionConfig) -> bool:
    """Whether nothing but ``qps`` and ``burst`` was changed from the defaults."""
    defaults = KubernetesConnectionConfig()
    ignored = {"qps", "burst"}
    return all(
        getattr(connection, f.name) == getattr(defaults, f.name)
        for f in attrs.fields(KubernetesConnectionConfig)
        if f.name not in ignored
    )


def thd_in_cluster(
    connection: KubernetesConnectionConfig,
    environ: Mapping[str, str],
    service_account_dir: str,
    timeout: float,
    key_path: str,
) -> ClusterSettings | None:
    """The in-cluster settings, or None outside a pod (no ``KUBERNETES_SERVICE_HOST``)."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "") or "443"
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 service address
    token_file = os.path.join(service_account_dir, "token")
    ca_file = os.path.join(service_account_dir, "ca.crt")
    where = f"{key_path} (in-cluster service account)"
    namespace = ""
    try:
        with open(os.path.join(service_account_dir, "namespace"), encoding="utf-8") as f:
            namespace = f.read(256).strip()
    except OSError:
        pass  # optional: the pod config names its namespace anyway
    return ClusterSettings(
        base_url=f"https://{host}:{port}",
        credentials=credentials_for(where, token_file=token_file),
        pem=PemMaterial(ca=read_pem(ca_file, where), ca_file=ca_file),
        namespace=namespace,
        timeout=timeout,
        **rate_of(connection),
    )


def thd_explicit(
    connection: KubernetesConnectionConfig, timeout: float, key_path: str
) -> ClusterSettings:
    """The settings from the ContainerSSH keys of ``kubernetes.connection``."""
    ca_pem, ca_file = connection.cacert, ""
    if not ca_pem and connection.cacert_file:
        ca_file = connection.cacert_file
        ca_pem = read_pem(ca_file, f"{key_path}.cacertFile")
    cert_pem, key_pem, cert_file, key_file = connection.cert, connection.key, "", ""
    if not cert_pem and connection.cert_file:
        cert_file, key_file = connection.cert_file, connection.key_file
        cert_pem = read_pem(cert_file, f"{key_path}.certFile")
        key_pem = read_pem(key_file, f"{key_path}.keyFile")
    if bool(cert_pem) != bool(key_pem):
        raise ClusterConfigError(key_path, "a client certificate needs its key and vice versa")
    tls_default = bool(ca_pem or cert_pem or connection.server_name)
    if connection.bearer_token:
        credentials = credentials_for(f"{key_path}.bearerToken", token=connection.bearer_token)
    else:
        credentials = credentials_for(
            f"{key_path}.bearerTokenFile",
            token_file=connection.bearer_token_file,
            username=connection.username,
            password=connection.password,
        )
    return ClusterSettings(
        base_url=base_url(
            connection.host, connection.path, tls_default=tls_default, key_path=key_path
        ),
        credentials=credentials,
        server_name=connection.server_name,
        pem=PemMaterial(ca_pem, cert_pem, key_pem, ca_file, cert_file, key_file),
        timeout=timeout,
        insecure=connection.insecure_skip_tls_verify,
        **rate_of(connection),
    )


@attrs.define
class Cluster:
    """The official client for one API server, and the files it was given.

    :ivar settings: what it was built from.
    :ivar api_client: the official client; use it from the backend's pool only.
    :ivar tls_dir: the private directory of inline PEM written for it, or None.
    """

    settings: ClusterSettings
    api_client: ApiClient
    tls_dir: str | None = None

    def thd_close(self) -> None:
        """Close the client's connection pool and remove the PEM files written for it."""
        try:
            self.api_client.close()
        finally:
            if self.tls_dir is not None:
                shutil.rmtree(self.tls_dir, ignore_errors=True)
                self.tls_dir = None


def thd_api_client(settings: ClusterSettings, tls_root: str | None, pool_size: int) -> Cluster:
    """Build the official client for ``settings`` (blocking: may write files).

    :param tls_root: where the private directory for inline PEM is made
        (the system's temporary directory if None).
    :param pool_size: connections kept to the API server (the pool's thread count).
    """
    configuration = Configuration(host=settings.base_url)
    configuration.verify_ssl = not settings.insecure
    if settings.insecure:
        # KUBERUN_INSECURE said so once, at load; urllib3 would otherwise
        # warn, without a message code, on each request.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    # urllib3 would retry on its own, outside the call's deadline.
    configuration.retries = 0
    configuration.connection_pool_maxsize = pool_size
    if settings.server_name:
        # urllib3 sends it as SNI and checks the certificate against it.
        configuration.tls_server_name = settings.server_name
    # No credentials here: each request adds its Authorization header itself
    # (see PodAPI), so a rotated token file is read again.
    tls_dir = None
    try:
        pem = settings.pem
        if (pem.ca and not pem.ca_file) or (pem.cert and not pem.cert_file):
            tls_dir = tempfile.mkdtemp(prefix="kubernetes-", dir=tls_root)
        if pem.ca:
            configuration.ssl_ca_cert = pem.ca_file or write_private(str(tls_dir), "ca.pem", pem.ca)
        if pem.cert:
            configuration.cert_file = pem.cert_file or write_private(
                str(tls_dir), "cert.pem", pem.cert
            )
            configuration.key_file = pem.key_file or write_private(str(tls_dir), "key.pem", pem.key)
        return Cluster(settings, ApiClient(configuration), tls_dir)
    except BaseException:
        if tls_dir is not None:
            shutil.rmtree(tls_dir, ignore_errors=True)
        raise
