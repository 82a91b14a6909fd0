"""What of the ``health`` section only TLS can tell: whether its certificate options work.

The config loader checks each key on its own; whether ``cert`` and ``key``
belong together, or OpenSSL takes the cipher list, is known only once the TLS
options are built. ``check-config`` and ``twistd`` build them before anything
starts, so a bad certificate is a configuration error naming the key, not a
crash at start-up.
"""

from __future__ import annotations

from conch_container.config.services import HealthConfig
from conch_container.httpserver import TLSConfigError, server_tls_options

__all__ = ["check_health_tls"]


def check_health_tls(config: HealthConfig) -> None:
    """Build the endpoint's TLS options when it is enabled.

    :raises TLSConfigError: naming ``health.<option>`` when one is unusable.
    """
    if not config.enable:
        return
    try:
        server_tls_options(config)
    except TLSConfigError as error:
        raise TLSConfigError(f"health.{error}") from None
