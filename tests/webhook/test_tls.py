"""Tests for conch_container.webhook.tls, unit and against a real TLS server on loopback."""

from __future__ import annotations

from typing import Any

from OpenSSL import crypto
from twisted.internet import defer, reactor
from twisted.internet.ssl import Certificate as TwistedCertificate
from twisted.internet.ssl import CertificateOptions, TLSVersion, trustRootFromCertificates
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from conch_container.testing.webhook import AuthWebhookResource, WebhookUser
from conch_container.webhook.client import (
    WebhookClient,
    WebhookConfigError,
    WebhookConnectionError,
    WebhookTimeoutError,
)
from conch_container.webhook.tls import (
    TLSConfigError,
    TLSSettings,
    WebhookTLSPolicy,
    openssl_cipher_names,
    openssl_group_names,
)
from tests.webhook.pki import Issued, issue, make_ca
from tests.webhook.support import ClientConfig

BODY = {"username": "alice", "passwordBase64": "c2VjcmV0"}  # "secret"


class NameTests(SynchronousTestCase):
    def test_cipher_spellings(self) -> None:
        """IANA, OpenSSL and GnuTLS spellings of one suite map to the OpenSSL name."""
        for name in (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_AES_128_GCM_SHA256",
        ):
            self.assertEqual(openssl_cipher_names([name]), (["ECDHE-RSA-AES128-GCM-SHA256"], False))
        self.assertEqual(
            openssl_cipher_names(["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"])[0],
            ["ECDHE-ECDSA-CHACHA20-POLY1305"],
        )

    def test_tls13_suites(self) -> None:
        """TLS 1.3 suites are accepted and reported separately."""
        self.assertEqual(openssl_cipher_names(["TLS_AES_128_GCM_SHA256"]), ([], True))

    def test_unknown_cipher(self) -> None:
        """An unknown suite is an error naming it."""
        with self.assertRaises(TLSConfigError) as caught:
            openssl_cipher_names(["TLS_RSA_WITH_RC4_128_MD5"])
        self.assertIn("TLS_RSA_WITH_RC4_128_MD5", str(caught.exception))
        self.assertRaises(TLSConfigError, openssl_cipher_names, [])

    def test_curves(self) -> None:
        """Curve names and aliases map to OpenSSL groups, in order, without repeats."""
        self.assertEqual(
            openssl_group_names(["X25519", "prime256v1", "secp256r1", "secp521r1"]),
            ["X25519", "prime256v1", "secp521r1"],
        )
        self.assertRaises(TLSConfigError, openssl_group_names, ["brainpoolP256r1"])
        self.assertRaises(TLSConfigError, openssl_group_names, [])

    def test_colon_strings(self) -> None:
        """Cipher and curve lists may be one colon-separated string."""
        settings = TLSSettings(curves="x25519:secp384r1", cipher="TLS_AES_128_GCM_SHA256")
        self.assertEqual(settings.curves, ("x25519", "secp384r1"))
        self.assertEqual(settings.cipher, ("TLS_AES_128_GCM_SHA256",))


class PolicyValidationTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """The default settings build a policy with system trust."""
        WebhookTLSPolicy(TLSSettings())

    def test_bad_version(self) -> None:
        """Only 1.2 and 1.3 are accepted as minimum versions."""
        self.assertRaises(TLSConfigError, WebhookTLSPolicy, TLSSettings(tls_version="1.1"))

    def test_bad_cacert(self) -> None:
        """A cacert that is not PEM is an error naming the option."""
        with self.assertRaises(TLSConfigError) as caught:
            WebhookTLSPolicy(TLSSettings(cacert="not a certificate"))
        self.assertTrue(str(caught.exception).startswith("cacert:"))

    def test_cert_without_key(self) -> None:
        """cert and key go together."""
        ca = make_ca()
        client = issue(ca, "client", client=True)
        self.assertRaises(TLSConfigError, WebhookTLSPolicy, TLSSettings(cert=client.cert_pem))
        self.assertRaises(TLSConfigError, WebhookTLSPolicy, TLSSettings(key=client.key_pem))

    def test_key_mismatch(self) -> None:
        """A key that does not belong to the certificate is refused at start-up."""
        ca = make_ca()
        one, two = issue(ca, "one", client=True), issue(ca, "two", client=True)
        with self.assertRaises(TLSConfigError) as caught:
            WebhookTLSPolicy(TLSSettings(cert=one.cert_pem, key=two.key_pem))
        self.assertIn("does not match", str(caught.exception))

    def test_client_reports_config_error(self) -> None:
        """The client turns TLS option errors into WebhookConfigError for https URLs."""
        self.assertRaises(
            WebhookConfigError,
            WebhookClient,
            ClientConfig(url="https://x/", curves=("nope",)),
            reactor=reactor,
        )


def _pkey(issued: Issued) -> crypto.PKey:
    return crypto.PKey.from_cryptography_key(issued.key)


def _x509(issued: Issued) -> crypto.X509:
    return crypto.X509.from_cryptography(issued.cert)


class RealTLSTests(TestCase):
    """A twisted.web server with TLS on 127.0.0.1 and a test CA made in the test."""

    def setUp(self) -> None:
        self.ca = make_ca("Webhook CA")
        self.server = issue(self.ca, "webhook", dns=("localhost",), ips=("127.0.0.1",))
        self.resource = AuthWebhookResource({"alice": WebhookUser(password="secret")})

    def listen(
        self,
        server: Issued | None = None,
        *,
        client_ca: Issued | None = None,
        maximum: Any = None,
        groups: bytes | None = None,
    ) -> int:
        server = server or self.server
        kwargs: dict[str, Any] = {
            "privateKey": _pkey(server),
            "certificate": _x509(server),
        }
        if client_ca is not None:
            kwargs["trustRoot"] = trustRootFromCertificates([TwistedCertificate(_x509(client_ca))])
        if maximum is not None:
            kwargs["lowerMaximumSecurityTo"] = maximum
        options = CertificateOptions(**kwargs)
        if groups is not None:
            from OpenSSL._util import lib

            context = options.getContext()
            self.assertEqual(lib.SSL_CTX_set1_curves_list(context._context, groups), 1)
        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0, Site(self.resource), options, interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def call(self, url: str, **config: Any) -> Any:
        config.setdefault("cacert", self.ca.cert_pem)
        client = WebhookClient(ClientConfig(url=url, timeout=5.0, **config), reactor=reactor)
        try:
            return await client.post("password", BODY)
        finally:
            await client.close()

    def run_ok(self, url: str, **config: Any) -> defer.Deferred[None]:
        async def check() -> None:
            answer = await self.call(url, **config)
            self.assertEqual(answer["success"], True)

        return defer.Deferred.fromCoroutine(check())

    def run_refused(self, url: str, **config: Any) -> defer.Deferred[None]:
        async def check() -> None:
            with self.assertRaises(WebhookConnectionError) as caught:
                await self.call(url, **config)
            self.assertNotIsInstance(caught.exception, WebhookTimeoutError)
            self.assertEqual(caught.exception.code.code, "HTTP_CLIENT_CONNECTION_FAILED")

        return defer.Deferred.fromCoroutine(check())

    def test_trusted_ca_ip(self) -> defer.Deferred[None]:
        """A server certificate from the configured CA is accepted (IP address SAN)."""
        port = self.listen()
        return self.run_ok(f"https://127.0.0.1:{port}/")

    def test_trusted_ca_hostname(self) -> defer.Deferred[None]:
        """A server certificate from the configured CA is accepted (DNS SAN)."""
        port = self.listen()
        return self.run_ok(f"https://localhost:{port}/")

    def test_untrusted_ca(self) -> defer.Deferred[None]:
        """A server certificate from another CA fails as a connection failure."""
        port = self.listen()
        return self.run_refused(f"https://127.0.0.1:{port}/", cacert=make_ca("Other").cert_pem)

    def test_system_trust_refuses_test_ca(self) -> defer.Deferred[None]:
        """Without cacert the system trust store is used, which does not know the test CA."""
        port = self.listen()
        return self.run_refused(f"https://127.0.0.1:{port}/", cacert="")

    def test_hostname_verified(self) -> defer.Deferred[None]:
        """A trusted certificate for another host name is refused."""
        port = self.listen(issue(self.ca, "other", dns=("other.test",)))
        return self.run_refused(f"https://localhost:{port}/")

    def test_mtls_required_not_presented(self) -> defer.Deferred[None]:
        """A server requiring a client certificate refuses a client without one."""
        client_ca = make_ca("Client CA")
        port = self.listen(client_ca=client_ca)
        return self.run_refused(f"https://127.0.0.1:{port}/")

    def test_mtls_presented(self) -> defer.Deferred[None]:
        """The configured client certificate is presented and accepted."""
        client_ca = make_ca("Client CA")
        client = issue(client_ca, "gateway", client=True)
        port = self.listen(client_ca=client_ca)
        return self.run_ok(f"https://127.0.0.1:{port}/", cert=client.cert_pem, key=client.key_pem)

    def test_minimum_version(self) -> defer.Deferred[None]:
        """tlsVersion 1.3 refuses a TLS 1.2 server; 1.2 accepts it."""
        port = self.listen(maximum=TLSVersion.TLSv1_2)
        d = self.run_refused(f"https://127.0.0.1:{port}/", tls_version="1.3")
        d.addCallback(lambda _: self.run_ok(f"https://127.0.0.1:{port}/", tls_version="1.2"))
        return d

    def test_tls12_ciphers_honoured(self) -> defer.Deferred[None]:
        """Over TLS 1.2 only the listed suites are offered (RSA suites cannot use an EC cert)."""
        port = self.listen(maximum=TLSVersion.TLSv1_2)
        url = f"https://127.0.0.1:{port}/"
        d = self.run_refused(
            url, tls_version="1.2", cipher=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)
        )
        d.addCallback(
            lambda _: self.run_ok(
                url, tls_version="1.2", cipher=("TLS_ECDHE_ECDSA_AES_256_GCM_SHA384",)
            )
        )
        return d

    def test_only_tls13_suites_means_tls13(self) -> defer.Deferred[None]:
        """A cipher list with only TLS 1.3 suites leaves TLS 1.3 as the only version."""
        port = self.listen(maximum=TLSVersion.TLSv1_2)
        return self.run_refused(
            f"https://127.0.0.1:{port}/", tls_version="1.2", cipher=("TLS_AES_128_GCM_SHA256",)
        )

    def test_curves_honoured(self) -> defer.Deferred[None]:
        """Only the configured key-exchange groups are offered."""
        port = self.listen(groups=b"P-384")
        url = f"https://127.0.0.1:{port}/"
        d = self.run_refused(url, curves=("x25519",))
        d.addCallback(lambda _: self.run_ok(url, curves=("secp384r1",)))
        return d
