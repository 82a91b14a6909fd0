"""The gzip writer: one standard gzip member, deflate only where deflate pays."""

from __future__ import annotations

import base64
import gzip
import random
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.codec import gzipwriter
from conch_container.audit.codec.gzipwriter import GzipWriter

KIB = 1024
rng = random.Random(11)
RANDOM = rng.randbytes(64 * KIB)
BASE64 = base64.b64encode(RANDOM)[: 64 * KIB]
TEXT = b"".join(
    b"-rw-r--r-- 1 user group %9d file_%d.txt\n" % (rng.randrange(10**7), i) for i in range(2000)
)[: 64 * KIB]


def small_writer() -> GzipWriter:
    """A writer that decides every 16 KiB and probes again after 64 KiB."""
    return GzipWriter(1, probe_window=16 * KIB, span=64 * KIB)


def feed(writer: GzipWriter, data: bytes, chunk: int = 4 * KIB) -> bytes:
    return b"".join(writer.compress(data[i : i + chunk]) for i in range(0, len(data), chunk))


class ModeTests(SynchronousTestCase):
    def test_text_deflated(self) -> None:
        """Text stays with deflate and shrinks to a fraction."""
        writer = small_writer()
        out = feed(writer, TEXT) + writer.finish()
        self.assertEqual(writer.mode, "deflate")
        self.assertLess(len(out), len(TEXT) // 3)
        self.assertEqual(gzip.decompress(out), TEXT)

    def test_random_stored(self) -> None:
        """Random bytes are stored after the first probe: no bigger than they were, give or take."""
        writer = small_writer()
        out = feed(writer, RANDOM[: 48 * KIB])
        self.assertEqual(writer.mode, "store")
        out += writer.finish()
        self.assertLess(len(out), 48 * KIB + 256)
        self.assertEqual(gzip.decompress(out), RANDOM[: 48 * KIB])

    def test_base64_deflated_by_isal(self) -> None:
        """With ISA-L (a dependency), data deflate barely shrinks stays deflated: it is fast."""
        self.assertIsNotNone(gzipwriter._isal)
        writer = small_writer()
        out = feed(writer, BASE64[: 48 * KIB])
        self.assertEqual(writer.mode, "deflate")
        out += writer.finish()
        self.assertLess(len(out), 48 * KIB * 0.8)
        self.assertEqual(gzip.decompress(out), BASE64[: 48 * KIB])

    def test_base64_huffman_coded(self) -> None:
        """Without ISA-L, what zlib's deflate barely shrinks is Huffman-coded (6 bits a byte)."""
        self.patch(gzipwriter, "_isal", None)
        writer = small_writer()
        out = feed(writer, BASE64[: 48 * KIB])
        self.assertEqual(writer.mode, "huffman")
        out += writer.finish()
        self.assertLess(len(out), 48 * KIB * 0.8)
        self.assertEqual(gzip.decompress(out), BASE64[: 48 * KIB])

    def test_back_to_deflate(self) -> None:
        """After a span of random bytes, text is probed with deflate again and compressed."""
        writer = small_writer()
        out = feed(writer, RANDOM) + feed(writer, RANDOM[: 16 * KIB])
        self.assertEqual(writer.mode, "deflate")
        before = len(out)
        out += feed(writer, TEXT) + writer.finish()
        self.assertLess(len(out) - before, len(TEXT) // 2)
        self.assertEqual(gzip.decompress(out), RANDOM + RANDOM[: 16 * KIB] + TEXT)

    def test_defaults_store_random(self) -> None:
        """With the default window, a download of random bytes is stored too."""
        writer = GzipWriter(1)
        feed(writer, RANDOM * 5)
        self.assertEqual(writer.mode, "store")


chunks = st.lists(
    st.tuples(
        st.sampled_from([RANDOM, BASE64, TEXT, bytes(64 * KIB)]),
        st.integers(0, 64 * KIB),
        st.integers(0, 20 * KIB),
        st.booleans(),
    ),
    max_size=25,
)


class StreamTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(chunks)
    def test_any_mix(self, pieces: list[tuple[bytes, int, int, bool]]) -> None:
        """Any mix of data, with flushes anywhere: a valid gzip member, readable at each flush."""
        writer = small_writer()
        out, data = b"", b""
        for source, start, size, flush in pieces:
            piece = source[start : start + size]
            data += piece
            out += writer.compress(piece)
            if flush:
                out += writer.flush()
                self.assertEqual(zlib.decompressobj(31).decompress(out), data)
        out += writer.finish()
        self.assertEqual(gzip.decompress(out), data)

    def test_header(self) -> None:
        """The first output is a gzip header, even for an empty stream."""
        out = GzipWriter(1).finish()
        self.assertEqual(out[:3], b"\x1f\x8b\x08")
        self.assertEqual(gzip.decompress(out), b"")
