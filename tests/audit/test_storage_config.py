"""The ``audit.s3`` section as the configuration loader checks it, with key paths in the errors."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import ConfigError, parse_config, validate_config

WEBHOOK_AUTH = {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}}
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class S3SectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.local = os.path.abspath(self.mktemp())
        os.makedirs(self.local)

    def document(self, **s3: Any) -> dict[str, Any]:
        section = {
            "local": self.local,
            "accessKey": "key",
            "secretKey": "secret",
            "bucket": "audit",
            **s3,
        }
        audit = {"enable": True, "format": "binary", "storage": "s3", "s3": section}
        return {"auth": WEBHOOK_AUTH, "audit": audit}

    def problem(self, document: dict[str, Any]) -> str:
        with self.assertRaises(ConfigError) as raised:
            validate_config(parse_config(document))
        return str(raised.exception)

    def test_complete(self) -> None:
        """A complete section validates."""
        validate_config(parse_config(self.document(cacert=CA, endpoint="https://s3.test")))

    def test_required(self) -> None:
        """accessKey, secretKey and bucket are required when the storage is s3."""
        for key in ("accessKey", "secretKey", "bucket"):
            self.assertEqual(
                self.problem(self.document(**{key: ""})), f"audit.s3.{key}: must not be empty"
            )

    def test_part_size_and_parallel_uploads(self) -> None:
        """uploadPartSize is at least 5 MiB, parallelUploads at least 1 (0 means the default)."""
        with self.assertRaises(ConfigError) as raised:
            parse_config(self.document(uploadPartSize=5 * 1024 * 1024 - 1))
        self.assertEqual(
            str(raised.exception), "audit.s3.uploadPartSize: must be at least 5242880 (5 MiB)"
        )
        with self.assertRaises(ConfigError) as raised:
            parse_config(self.document(parallelUploads=-1))
        self.assertEqual(str(raised.exception), "audit.s3.parallelUploads: must be at least 1")

    def test_cacert_is_pem(self) -> None:
        """cacert is inline PEM text."""
        self.assertEqual(
            self.problem(self.document(cacert="/etc/ssl/my-ca.pem")),
            "audit.s3.cacert: must be PEM text (a CA certificate)",
        )

    def test_endpoint_url(self) -> None:
        self.assertEqual(
            self.problem(self.document(endpoint="s3.test")),
            "audit.s3.endpoint: must be a valid http:// or https:// URL",
        )
