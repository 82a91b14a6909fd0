"""TLS for the HTTP services: ``cert``, ``key``, ``clientcacert``, ``tlsVersion``, ``curves``...

ContainerSSH's semantics: TLS is on when both ``cert`` and ``key`` are set;
``clientcacert`` makes the server require a client certificate signed by one
of those CAs (mutual TLS). The names are mapped and checked by the same
helpers as the webhook clients' (:mod:`conch_container.webhook.tls`), so the
two sides accept the same spellings and differ from Go's TLS stack in the same
ways (TLS 1.3 suites cannot be restricted).
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion

from conch_container.config.http import HTTPServerConfig
from conch_container.webhook.tls import (
    TLSConfigError,
    load_certificates,
    load_key_pair,
    openssl_cipher_names,
    openssl_group_names,
    set_context_groups,
)

__all__ = ["TLSConfigError", "server_tls_options", "tls_enabled"]

_TLS_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}


def tls_enabled(config: HTTPServerConfig) -> bool:
    """Whether the block asks for TLS (``cert`` or ``key`` set; both are then required)."""
    return bool(config.cert.strip() or config.key.strip())


def server_tls_options(config: HTTPServerConfig) -> CertificateOptions | None:
    """The server's TLS options, or ``None`` for plain HTTP.

    Everything is parsed and handed to OpenSSL here, so a bad certificate or
    an unknown cipher stops the gateway at start-up, naming the option.

    :raises TLSConfigError: for an invalid option (or only one of cert and key).
    """
    if not tls_enabled(config):
        return None
    if config.tls_version not in _TLS_VERSIONS:
        raise TLSConfigError(f"tlsVersion: unsupported TLS version: {config.tls_version}")
    chain, key = load_key_pair(config.cert, config.key, "server")
    tls12, _ = openssl_cipher_names(config.cipher)
    groups = ":".join(openssl_group_names(config.curves)).encode("ascii")

    options: dict[str, Any] = {
        "certificate": crypto.X509.from_cryptography(chain[0]),
        "privateKey": crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
        "extraCertChain": [crypto.X509.from_cryptography(c) for c in chain[1:]],
        "raiseMinimumTo": _TLS_VERSIONS[config.tls_version] if tls12 else TLSVersion.TLSv1_3,
    }
    if tls12:
        options["acceptableCiphers"] = AcceptableCiphers.fromOpenSSLCipherString(":".join(tls12))
    if config.clientcacert.strip():
        cas = load_certificates(config.clientcacert, "clientcacert")
        options["verify"] = True
        options["requireCertificate"] = True
        options["caCerts"] = [crypto.X509.from_cryptography(c) for c in cas]
    try:
        tls = CertificateOptions(**options)
        # The context is made once and shared by every connection: the groups
        # set on it apply to all of them.
        set_context_groups(tls.getContext(), groups)
    except SSL.Error as e:
        raise TLSConfigError(f"cipher or curves: rejected by OpenSSL ({e})") from None
    return tls
