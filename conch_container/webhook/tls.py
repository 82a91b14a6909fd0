"""TLS for webhook clients: ``cacert``, ``cert``, ``key``, ``tlsVersion``, ``curves``, ``cipher``.

The options are parsed once, when the client is built, so that a bad PEM
block or an unknown cipher name is a start-up error and never a failed login.
:class:`WebhookTLSPolicy` then hands Twisted's :class:`~twisted.web.client.Agent`
one connection creator per host; it builds on
:func:`twisted.internet.ssl.optionsForClientTLS`, so the server certificate is
always verified against the trust roots *and* the host name (or IP address)
in the URL.

What is honoured, and how it differs from ContainerSSH's Go TLS stack:

* ``tlsVersion`` is the minimum protocol version (``1.2`` or ``1.3``).
* ``cipher`` restricts the TLS 1.2 cipher suites. IANA, OpenSSL and GnuTLS
  spellings are accepted and mapped to OpenSSL names. TLS 1.3 suites are
  accepted for compatibility but do not restrict anything: TLS 1.3 suites are
  not part of an OpenSSL cipher string, and ContainerSSH (Go) ignores the list
  for TLS 1.3 as well, so TLS 1.3 always offers the three standard AEAD suites.
  A list with no TLS 1.2 suite at all leaves TLS 1.3 as the only usable
  version, which is what Go does with such a list.
* ``curves`` sets the key-exchange groups offered, in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    AcceptableCiphers,
    Certificate,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from conch_container.config import tls as names

if TYPE_CHECKING:
    from conch_container.config.http import HTTPClientConfig


class TLSConfigError(ValueError):
    """A TLS option of an HTTP client or server is invalid; the message names the option."""


# ---------------------------------------------------------------------------
# Names (the tables are the config's, so the loader and the client agree)

DEFAULT_CURVES = names.DEFAULT_CURVES
DEFAULT_CIPHERS = names.DEFAULT_CIPHERS

_TLS_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}


def split_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """A cipher or curve list as the config gives it: a list, or one ``:``-separated string."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(":") if part.strip())
    return tuple(value)


def openssl_cipher_names(suites: Iterable[str]) -> tuple[list[str], bool]:
    """Map configured suite names (IANA, OpenSSL or GnuTLS spelling) to OpenSSL names.

    :return: the TLS 1.2 suites in OpenSSL spelling, and whether any TLS 1.3 suite was listed.
    :raises TLSConfigError: for a name that is not a supported suite.
    """
    tls12: list[str] = []
    any_tls13 = False
    for suite in suites:
        iana = names.canonical_cipher(suite)
        if iana is None:
            raise TLSConfigError(f"cipher: unsupported cipher suite: {suite}")
        if iana in names.TLS13_CIPHERS:
            any_tls13 = True
        elif names.OPENSSL_CIPHER_NAMES[iana] not in tls12:
            tls12.append(names.OPENSSL_CIPHER_NAMES[iana])
    if not tls12 and not any_tls13:
        raise TLSConfigError("cipher: no cipher suites provided")
    return tls12, any_tls13


def openssl_group_names(curves: Iterable[str]) -> list[str]:
    """Map configured curve names to OpenSSL group names, keeping order, dropping repeats.

    :raises TLSConfigError: for an unknown curve or an empty list.
    """
    groups: list[str] = []
    for curve in curves:
        canonical = names.canonical_curve(curve)
        if canonical is None:
            raise TLSConfigError(f"curves: invalid ECDH curve: {curve}")
        if names.OPENSSL_CURVE_NAMES[canonical] not in groups:
            groups.append(names.OPENSSL_CURVE_NAMES[canonical])
    if not groups:
        raise TLSConfigError("curves: no ECDH curves provided")
    return groups


# ---------------------------------------------------------------------------
# Settings


@attrs.frozen
class TLSSettings:
    """The TLS part of an HTTP client block; PEM values are PEM text, not file names."""

    cacert: str = ""
    cert: str = ""
    key: str = ""
    tls_version: str = "1.3"
    curves: tuple[str, ...] = attrs.field(default=DEFAULT_CURVES, converter=split_names)
    cipher: tuple[str, ...] = attrs.field(default=DEFAULT_CIPHERS, converter=split_names)

    @classmethod
    def from_config(cls, config: HTTPClientConfig) -> TLSSettings:
        """Take the TLS options from an HTTP client config block (empty ones get defaults)."""
        defaults = cls()
        return cls(
            cacert=config.cacert,
            cert=config.cert,
            key=config.key,
            tls_version=config.tls_version or defaults.tls_version,
            curves=config.curves or defaults.curves,
            cipher=config.cipher or defaults.cipher,
        )


def load_certificates(pem: str, option: str) -> list[x509.Certificate]:
    """The certificates of a PEM block (one or more), checked so that OpenSSL takes them.

    :raises TLSConfigError: naming ``option`` when the block is not usable.
    """
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
        for certificate in certificates:
            # Both are parsed only when asked for: fail here, naming the option.
            certificate.public_key()
            crypto.X509.from_cryptography(certificate)
    except (ValueError, UnsupportedAlgorithm, crypto.Error) as e:
        raise TLSConfigError(f"{option}: not a PEM certificate ({e})") from None
    return certificates


def load_private_key(pem: str) -> PrivateKeyTypes:
    """An unencrypted PEM private key.

    :raises TLSConfigError: naming the ``key`` option when it is not one.
    """
    try:
        return serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise TLSConfigError(f"key: not an unencrypted PEM private key ({e})") from None


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_key_pair(cert: str, key: str, who: str) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    """A certificate chain and its private key, checked to belong together.

    :param who: ``client`` or ``server``, for the messages.
    :raises TLSConfigError: when either is missing or unusable, or they do not match.
    """
    if bool(cert.strip()) != bool(key.strip()):
        missing = "key" if cert.strip() else "cert"
        raise TLSConfigError(f"{missing}: a {who} certificate needs both cert and key")
    chain = load_certificates(cert, "cert")
    private_key = load_private_key(key)
    if _public_der(private_key.public_key()) != _public_der(chain[0].public_key()):
        raise TLSConfigError(f"cert: the {who} certificate does not match the key")
    return chain, private_key


@implementer(IPolicyForHTTPS)
class WebhookTLSPolicy:
    """Client TLS policy for :class:`~twisted.web.client.Agent` built from :class:`TLSSettings`.

    :raises TLSConfigError: when an option is invalid (raised by the constructor).
    """

    def __init__(self, settings: TLSSettings) -> None:
        if settings.tls_version not in _TLS_VERSIONS:
            raise TLSConfigError(f"tlsVersion: unsupported TLS version: {settings.tls_version}")
        minimum = _TLS_VERSIONS[settings.tls_version]
        tls12, _ = openssl_cipher_names(settings.cipher)
        self._groups = ":".join(openssl_group_names(settings.curves)).encode("ascii")

        extra: dict[str, Any] = {}
        if tls12:
            try:
                ciphers = AcceptableCiphers.fromOpenSSLCipherString(":".join(tls12))
            except SSL.Error as e:  # pragma: no cover - all listed suites exist in OpenSSL
                raise TLSConfigError(f"cipher: {e}") from None
            extra["acceptableCiphers"] = ciphers
        else:
            # Only TLS 1.3 suites listed: nothing is left for TLS 1.2.
            minimum = TLSVersion.TLSv1_3
        extra["raiseMinimumTo"] = minimum

        if settings.cacert.strip():
            cas = load_certificates(settings.cacert, "cacert")
            self._trust = trustRootFromCertificates(
                [Certificate(crypto.X509.from_cryptography(c)) for c in cas]
            )
        else:
            self._trust = platformTrust()

        if settings.cert.strip() or settings.key.strip():
            chain, key = load_key_pair(settings.cert, settings.key, "client")
            extra["certificate"] = crypto.X509.from_cryptography(chain[0])
            extra["privateKey"] = crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]
            extra["extraCertChain"] = [crypto.X509.from_cryptography(c) for c in chain[1:]]
        self._extra = extra

        # Fail now, not on the first login, if OpenSSL refuses the options.
        self._check()

    def _check(self) -> None:
        try:
            optionsForClientTLS(
                "localhost", trustRoot=self._trust, extraCertificateOptions=dict(self._extra)
            )
        except (ValueError, SSL.Error) as e:
            raise TLSConfigError(f"cipher: rejected by OpenSSL ({e})") from None
        connection = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
        try:
            set_groups(connection, self._groups)
        except SSL.Error as e:
            raise TLSConfigError(f"curves: rejected by OpenSSL ({e})") from None

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        """A connection creator that verifies ``hostname`` (IDNA bytes or an IP literal)."""
        inner = optionsForClientTLS(
            hostname.decode("ascii"),
            trustRoot=self._trust,
            # optionsForClientTLS updates the dict it is given: hand it a copy.
            extraCertificateOptions=dict(self._extra),
        )
        return _WithKeyExchangeGroups(inner, self._groups)


@implementer(IOpenSSLClientConnectionCreator)
class _WithKeyExchangeGroups:
    """Sets the key-exchange groups on every connection the wrapped creator makes.

    Twisted's TLS options have no setting for the groups, and a context made by
    :func:`optionsForClientTLS` is shared by its connections, so the groups are
    set on each connection instead (``SSL_set1_groups_list``).
    """

    def __init__(self, inner: IOpenSSLClientConnectionCreator, groups: bytes) -> None:
        self._inner = inner
        self._groups = groups

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = self._inner.clientConnectionForTLS(tlsProtocol)
        set_groups(connection, self._groups)
        return connection


def set_groups(connection: SSL.Connection, groups: bytes) -> None:
    """Set the key-exchange groups (``:``-separated OpenSSL names) of one connection.

    :raises SSL.Error: when OpenSSL refuses them.
    """
    # pyOpenSSL has no public call for the groups list; Twisted itself reaches
    # into the same binding for its elliptic-curve setup.
    from OpenSSL._util import exception_from_error_queue, lib

    if lib.SSL_set1_curves_list(connection._ssl, groups) != 1:
        exception_from_error_queue(SSL.Error)


def set_context_groups(context: SSL.Context, groups: bytes) -> None:
    """Set the key-exchange groups of every connection a (server) context makes.

    :raises SSL.Error: when OpenSSL refuses them.
    """
    from OpenSSL._util import exception_from_error_queue, lib

    if lib.SSL_CTX_set1_curves_list(context._context, groups) != 1:
        exception_from_error_queue(SSL.Error)
