"""An S3 endpoint with a certificate from the operator's own CA (``audit.s3.cacert``).

A TLS proxy in front of the S3 server presents a certificate for 127.0.0.1
issued by a throwaway CA (:mod:`tests.webhook.pki`).
"""

from __future__ import annotations

from OpenSSL import crypto
from twisted.internet.ssl import CertificateOptions

from conch_container import messages
from tests.audit.s3_case import S3TestCase, reactor
from tests.audit.tcp_proxy import proxy_to
from tests.webhook.pki import issue, make_ca


class TLSTests(S3TestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        self.ca = make_ca("Audit test CA")
        server = issue(self.ca, "s3.test", ips=("127.0.0.1",))
        options = CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(server.key),
            certificate=crypto.X509.from_cryptography(server.cert),
            # botocore's urllib3 offers ALPN; without a protocol to select,
            # pyOpenSSL ends the handshake with an internal error.
            acceptableProtocols=[b"http/1.1"],
        )
        proxy = proxy_to(self.endpoint)
        self.https = proxy.listen(reactor, tls=options)
        self.addCleanup(proxy.close)

    async def test_cacert_trusted(self) -> None:
        """With ``cacert`` the endpoint's certificate verifies and the stream is uploaded."""
        storage = await self.storage(self.config(endpoint=self.https, cacert=self.ca.cert_pem))
        info = await self.record(storage, b"over TLS")
        self.assertTrue(await storage.wait_uploaded(info.connection_id))
        self.assertEqual((await self.get(info.connection_id))["Body"], b"over TLS")

    async def test_unknown_ca_refused_once(self) -> None:
        """Without it the certificate is refused: one error, no retries, the stream kept."""
        storage = await self.storage(self.config(endpoint=self.https))
        info = await self.record(storage, b"over TLS")
        self.assertFalse(await storage.wait_uploaded(info.connection_id))
        failures = self.events_of(messages.AUDIT_S3_SINGLE_UPLOAD_FAILED.code)
        self.assertEqual(len(failures), 1)
        self.assertIn("certificate", failures[0]["reason"])
        self.assert_kept(info.connection_id, b"over TLS")
