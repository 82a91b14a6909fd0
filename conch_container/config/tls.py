"""TLS cipher-suite and curve names accepted in the HTTP client and server blocks.

ContainerSSH accepts the IANA, OpenSSL and GnuTLS spellings of the suites it
supports; the config keeps the canonical (IANA, lower-case curve) name, and
:data:`OPENSSL_CIPHER_NAMES` gives what OpenSSL calls each, for the code that
builds TLS contexts.
"""

from __future__ import annotations

#: TLS 1.3 suites (not configurable in OpenSSL's cipher list, always offered).
TLS13_CIPHERS = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)

#: Canonical IANA suite name -> OpenSSL name.
OPENSSL_CIPHER_NAMES: dict[str, str] = {
    "TLS_AES_128_GCM_SHA256": "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384": "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256": "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

_GNUTLS_CIPHER_NAMES = {
    "TLS_ECDHE_RSA_AES_128_GCM_SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_AES_128_GCM_SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_AES_256_GCM_SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_AES_256_GCM_SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_CHACHA20_POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_CHACHA20_POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    # Go's constant names for the ChaCha20 suites omit the hash.
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
}

_CIPHER_ALIASES: dict[str, str] = {
    **{name: name for name in OPENSSL_CIPHER_NAMES},
    **{openssl: iana for iana, openssl in OPENSSL_CIPHER_NAMES.items()},
    **_GNUTLS_CIPHER_NAMES,
}

#: Canonical curve name -> OpenSSL name.
OPENSSL_CURVE_NAMES: dict[str, str] = {
    "x25519": "X25519",
    "secp256r1": "prime256v1",
    "secp384r1": "secp384r1",
    "secp521r1": "secp521r1",
}

_CURVE_ALIASES = {
    "x25519": "x25519",
    "secp256r1": "secp256r1",
    "prime256v1": "secp256r1",
    "p-256": "secp256r1",
    "secp384r1": "secp384r1",
    "p-384": "secp384r1",
    "secp521r1": "secp521r1",
    "p-521": "secp521r1",
}

DEFAULT_CIPHERS = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
)
DEFAULT_CURVES = ("x25519", "secp256r1", "secp384r1", "secp521r1")


def canonical_cipher(name: str) -> str | None:
    """The IANA name of a suite given in any accepted spelling, else ``None``."""
    return _CIPHER_ALIASES.get(name.strip().upper())


def canonical_curve(name: str) -> str | None:
    """The canonical name of a curve given in any accepted spelling, else ``None``."""
    return _CURVE_ALIASES.get(name.strip().lower())
