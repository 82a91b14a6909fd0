"""The HTTP client and HTTP server blocks other sections embed inline."""

from __future__ import annotations

import attrs

from conch_container.config import tls, values
from conch_container.config.kinds import (
    Bool,
    Canonical,
    Choice,
    Duration,
    ListOf,
    PemOrFile,
    Str,
    min_duration,
    not_empty,
)
from conch_container.config.schema import setting


def tls_version() -> Choice:
    return Choice("1.2", "1.3")


def cipher_list() -> ListOf:
    return ListOf(
        Canonical(tls.canonical_cipher, "TLS cipher suite"),
        not_empty,
        colon=True,
        type_name="list of TLS cipher suites (or one `:`-separated string)",
    )


def curve_list() -> ListOf:
    return ListOf(
        Canonical(tls.canonical_curve, "TLS curve"),
        not_empty,
        colon=True,
        type_name="list of TLS curves (or one `:`-separated string)",
    )


@attrs.frozen
class HTTPClientConfig:
    """How to call an HTTP(S) service: URL, timeout and TLS settings.

    The TLS settings apply to ``https://`` URLs only. ``cacert``, ``cert``
    and ``key`` hold PEM text (files named in the config are read at load).
    """

    url: str = setting("url", Str(), "", doc="Base URL of the service.")
    allow_redirects: bool = setting(
        "allowRedirects",
        Bool(),
        False,
        doc="Follow HTTP redirects instead of failing; never from `https://` to plain `http://`.",
    )
    timeout: float = setting(
        "timeout",
        Duration(min_duration(0.1)),
        2.0,
        doc="Time limit of one HTTP request (at least 100ms).",
    )
    cacert: str = setting(
        "cacert",
        PemOrFile(),
        "",
        doc="CA certificates to verify the server with; empty: the system's CAs.",
    )
    cert: str = setting(
        "cert", PemOrFile(), "", doc="Client certificate for mutual TLS (with `key`)."
    )
    key: str = setting(
        "key", PemOrFile(), "", doc="Client private key for mutual TLS (with `cert`)."
    )
    tls_version: str = setting("tlsVersion", tls_version(), "1.3", doc="Minimum TLS version.")
    curves: tuple[str, ...] = setting(
        "curves",
        curve_list(),
        tls.DEFAULT_CURVES,
        doc="Key-exchange curves: `x25519`, `secp256r1` (`prime256v1`), `secp384r1`, `secp521r1`.",
    )
    cipher: tuple[str, ...] = setting(
        "cipher",
        cipher_list(),
        tls.DEFAULT_CIPHERS,
        doc="TLS 1.2 cipher suites (IANA, OpenSSL or GnuTLS names; kept as IANA names).",
    )


@attrs.frozen
class HTTPServerConfig:
    """Where an HTTP service listens, and its TLS settings (TLS iff cert and key are set)."""

    listen: str = setting(
        "listen",
        Str(values.host_port, type_name="host:port"),
        "0.0.0.0:8080",
        doc="Listen address.",
    )
    cert: str = setting(
        "cert", PemOrFile(), "", doc="Server certificate; TLS is on when `cert` and `key` are set."
    )
    key: str = setting("key", PemOrFile(), "", doc="Server private key.")
    clientcacert: str = setting(
        "clientcacert",
        PemOrFile(),
        "",
        doc="CA certificates for verifying client certificates (mutual TLS); empty: none.",
    )
    tls_version: str = setting("tlsVersion", tls_version(), "1.3", doc="Minimum TLS version.")
    curves: tuple[str, ...] = setting(
        "curves", curve_list(), tls.DEFAULT_CURVES, doc="Key-exchange curves, as for clients."
    )
    cipher: tuple[str, ...] = setting(
        "cipher", cipher_list(), tls.DEFAULT_CIPHERS, doc="TLS 1.2 cipher suites, as for clients."
    )
