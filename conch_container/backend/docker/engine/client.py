"""Docker engine endpoints and the docker-py clients that talk to them.

A client is built per distinct endpoint setting (``docker.connection`` plus
``docker.timeouts.http``), because the configuration may differ per connection
once the config webhook is in use; the backend caches them by
:class:`EngineSettings`. Building one negotiates the API version with the
engine, so :func:`thd_connect` is a blocking call for the backend's thread pool.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from typing import TYPE_CHECKING, Any

import attrs
import docker
import requests.adapters
from docker.constants import MINIMUM_DOCKER_API_VERSION
from docker.tls import TLSConfig

from conch_container.backend.files import write_private

if TYPE_CHECKING:
    from conch_container.config import DockerConfig

#: The oldest TLS version the gateway accepts from a Docker engine.
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2

DEFAULT_HOST = "unix:///var/run/docker.sock"


@attrs.frozen
class EngineSettings:
    """How to reach one Docker engine.

    TLS is used only when ``cacert``, ``cert`` and ``key`` are all set, as in
    ContainerSSH; they hold PEM text (never file names). The PEM values are
    left out of ``repr`` so the key never reaches a log line.
    """

    host: str = DEFAULT_HOST
    cacert: str = attrs.field(default="", repr=False)
    cert: str = attrs.field(default="", repr=False)
    key: str = attrs.field(default="", repr=False)
    timeout: float = 15.0

    @property
    def tls(self) -> bool:
        """Whether the engine is reached over TLS."""
        return bool(self.cacert and self.cert and self.key)

    @classmethod
    def from_config(cls, docker_config: DockerConfig) -> EngineSettings:
        """The settings from a ``docker`` config section (connection + ``timeouts.http``)."""
        connection = docker_config.connection
        return cls(
            host=connection.host or DEFAULT_HOST,
            cacert=connection.cacert or "",
            cert=connection.cert or "",
            key=connection.key or "",
            timeout=float(docker_config.timeouts.http),
        )


class _MinimumTLSAdapter(requests.adapters.HTTPAdapter):
    """An HTTPS adapter that refuses TLS versions below :data:`MINIMUM_TLS_VERSION`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_minimum_version"] = MINIMUM_TLS_VERSION
        super().init_poolmanager(*args, **kwargs)


def thd_connect(
    settings: EngineSettings, tls_root: str, max_pool_size: int
) -> tuple[docker.APIClient, str | None]:
    """Build a low-level client and negotiate the API version (blocking).

    With TLS the PEM values are written into a new private directory under
    ``tls_root`` for docker-py, which reads them from files; the directory is
    returned so it can be removed when the client is dropped.
    """
    tls: TLSConfig | bool = False
    tls_dir = None
    if settings.tls:
        tls_dir = tempfile.mkdtemp(prefix="engine-", dir=tls_root)
        tls = TLSConfig(
            client_cert=(
                write_private(tls_dir, "cert.pem", settings.cert),
                write_private(tls_dir, "key.pem", settings.key),
            ),
            ca_cert=write_private(tls_dir, "ca.pem", settings.cacert),
            verify=True,
        )
    try:
        if not settings.tls:
            client = docker.APIClient(
                base_url=settings.host,
                version="auto",
                timeout=settings.timeout,
                max_pool_size=max_pool_size,
            )
            return client, tls_dir
        # With TLS the client is set up before its first call, so that the
        # version negotiation already runs under the rules below.
        probe = _tls_client(settings, tls, max_pool_size, MINIMUM_DOCKER_API_VERSION)
        try:
            version = str(probe.version(api_version=False)["ApiVersion"])
        finally:
            probe.close()
        return _tls_client(settings, tls, max_pool_size, version), tls_dir
    except BaseException:
        if tls_dir is not None:
            shutil.rmtree(tls_dir, ignore_errors=True)
        raise


def _tls_client(
    settings: EngineSettings, tls: TLSConfig | bool, max_pool_size: int, version: str
) -> docker.APIClient:
    client = docker.APIClient(
        base_url=settings.host,
        version=version,
        timeout=settings.timeout,
        tls=tls,
        max_pool_size=max_pool_size,
    )
    client.mount("https://", _MinimumTLSAdapter(pool_maxsize=max_pool_size))
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the client's
    # own CA (a long-standing requests behaviour), so an operator's environment
    # would make the engine's certificate fail to verify: the configured
    # cacert is the only trust for the engine.
    client.trust_env = False
    return client
