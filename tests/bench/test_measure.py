"""The benchmark's transfers, with local programs standing in for SSH clients."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bench.measure import MIB, download, upload
from bench.procs import BenchError


class UploadTests(SynchronousTestCase):
    def test_everything_is_taken(self) -> None:
        """The whole size is written; the first MiB is left out of the rate."""
        transfer = upload(["sh", "-c", "cat > /dev/null"], 8 * MIB, 30.0)
        self.assertEqual((transfer.total, transfer.first_chunk), (8 * MIB, MIB))
        self.assertGreater(transfer.rate_mib_s, 0)

    def test_reader_that_stops(self) -> None:
        """A client that stops reading is an error naming how far it got."""
        with self.assertRaises(BenchError) as raised:
            upload(["sh", "-c", "head -c 1 > /dev/null"], 64 * MIB, 30.0)
        self.assertIn("stopped reading after", str(raised.exception))

    def test_failing_program(self) -> None:
        """A non-zero exit status is an error."""
        with self.assertRaises(BenchError) as raised:
            upload(["sh", "-c", "cat > /dev/null; exit 3"], 2 * MIB, 30.0)
        self.assertIn("exited with 3", str(raised.exception))


class DownloadTests(SynchronousTestCase):
    def test_size_checked(self) -> None:
        """A download of the wrong size is an error."""
        with self.assertRaises(BenchError):
            download(["sh", "-c", "head -c 1000 /dev/zero"], 2000, 30.0)
