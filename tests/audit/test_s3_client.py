"""The pieces under the uploader: which failures are retried, how long between, part bodies."""

from __future__ import annotations

import io
import os
import random

import botocore.exceptions
from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.storage.s3.client import FileRange, S3Error, classify
from conch_container.audit.storage.s3.uploader import RetryPolicy


def client_error(status: int, code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


class ClassifyTests(SynchronousTestCase):
    def test_retried(self) -> None:
        """5xx answers, throttling and network failures are worth another attempt."""
        for error in (
            client_error(500, "InternalError"),
            client_error(503, "SlowDown"),
            client_error(429, "TooManyRequests"),
            client_error(400, "RequestTimeout"),
            client_error(400, "Throttling"),
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
            botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ):
            self.assertTrue(classify(error).retryable, error)

    def test_not_retried(self) -> None:
        """Refusals that need an operator, and local file trouble, are not retried."""
        for error in (
            client_error(403, "AccessDenied"),
            client_error(403, "InvalidAccessKeyId"),
            client_error(403, "SignatureDoesNotMatch"),
            client_error(404, "NoSuchBucket"),
            client_error(404, "NoSuchUpload"),
            client_error(400, "InvalidArgument"),
            FileNotFoundError(2, "No such file or directory"),
            botocore.exceptions.ParamValidationError(report="bad"),
        ):
            self.assertFalse(classify(error).retryable, error)

    def test_details(self) -> None:
        """S3's code and HTTP status are kept for the log."""
        error = classify(client_error(403, "AccessDenied"))
        self.assertEqual((error.code, error.status), ("AccessDenied", 403))
        self.assertIn("AccessDenied", str(error))
        self.assertIs(classify(error), error)
        self.assertIsInstance(error, S3Error)


class RetryPolicyTests(SynchronousTestCase):
    def test_grows_within_bounds(self) -> None:
        """Pauses lie between half and all of a ceiling that doubles up to the maximum."""
        policy = RetryPolicy(initial=1.0, factor=2.0, maximum=60.0)
        rng = random.Random(7)
        ceilings = ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (5000, 60.0))
        for attempt, ceiling in ceilings:
            for _ in range(20):
                pause = policy.pause(attempt, rng)
                self.assertTrue(ceiling / 2 <= pause <= ceiling, (attempt, pause))


class FileRangeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        with open(self.path, "wb") as file:
            file.write(bytes(range(256)) * 4)
        self.file = open(self.path, "rb")
        self.addCleanup(self.file.close)

    def test_reads_its_range(self) -> None:
        """Reads stay within the range, in chunks of any size."""
        body = FileRange(self.file, 100, 300)
        self.assertEqual(len(body), 300)
        chunks = []
        while chunk := body.read(64):
            chunks.append(chunk)
        self.assertEqual(b"".join(chunks), (bytes(range(256)) * 4)[100:400])
        self.assertEqual(body.read(), b"")

    def test_seeks_as_botocore_does(self) -> None:
        """Seeking to the end gives the length; seeking to 0 starts over."""
        body = FileRange(self.file, 10, 20)
        body.read(5)
        self.assertEqual(body.tell(), 5)
        self.assertEqual(body.seek(0, io.SEEK_END), 20)
        body.seek(0)
        self.assertEqual(body.read(), (bytes(range(256)) * 4)[10:30])

    def test_short_file(self) -> None:
        """A file shorter than its range fails the read instead of sending less."""
        body = FileRange(self.file, os.path.getsize(self.path) - 5, 10)
        self.assertEqual(len(body.read(5)), 5)
        with self.assertRaises(OSError):
            body.read(5)
