"""Fuzzing the audit log reader: arbitrary bytes and mutated real recordings.

``BinaryLogReader`` reads files an operator points it at: ContainerSSH's own
logs, logs of a gateway killed mid-write, and whatever else is in the
directory. It may raise only ``AuditLogFormatError``, and only for a file
that is not an audit log at all (before any message); anything else ends the
iteration with the messages read so far and a warning.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib

from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.codec.binary import HEADER_SIZE, file_header
from conch_container.audit.codec.binaryread import AuditLogFormatError, BinaryLogReader, StreamEnd
from conch_container.audit.message import AuditMessage
from tests.fuzz import fuzz, note

FIXTURE = os.path.join(
    os.path.dirname(__file__), "..", "audit", "fixtures", "auditlog-v1-0.4.0.bin"
)
with open(FIXTURE, "rb") as _f:
    CONTAINERSSH_LOG = _f.read()
#: The fixture's body, inflated (its gzip stream is unterminated, so not with
#: gzip.decompress): mutations of it are compressed again, to reach the CBOR decoder.
CONTAINERSSH_BODY = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(
    CONTAINERSSH_LOG[HEADER_SIZE:]
)


def read(data: bytes) -> tuple[list[AuditMessage], BinaryLogReader]:
    reader = BinaryLogReader(io.BytesIO(data))
    return list(reader), reader


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, inserted, deleted, or cut off."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip":
            data[where] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 8))]
        else:
            del data[where:]
    return bytes(data)


class AuditDecoderTests(SynchronousTestCase):
    def check(self, data: bytes) -> None:
        try:
            messages, reader = read(data)
        except AuditLogFormatError as error:
            self.assertTrue(str(error))
            note("not a log")
            return
        if reader.end is StreamEnd.COMPLETE:
            self.assertIsNone(reader.warning)
            note("complete")
        else:
            self.assertTrue(reader.warning)
            note("cut short")
        self.assertEqual(reader.count, len(messages))
        for message in messages:
            self.assertIsInstance(message, AuditMessage)

    @fuzz(st.binary(max_size=400), expect=("not a log",))
    def test_any_bytes(self, data: bytes) -> None:
        """Arbitrary bytes are not a log, or a log read as far as it goes."""
        self.check(data)

    @fuzz(st.binary(max_size=400), expect=("cut short",))
    def test_any_body(self, body: bytes) -> None:
        """A valid header with any body: never an exception, always a warning or an end."""
        self.check(file_header(2) + body)

    @fuzz(mutated(CONTAINERSSH_LOG), expect=("cut short",))
    def test_mutated_containerssh_log(self, data: bytes) -> None:
        """ContainerSSH's own log with bytes changed anywhere (header, gzip, CBOR)."""
        self.check(data)

    @fuzz(mutated(CONTAINERSSH_BODY), st.sampled_from([1, 2]), expect=("cut short",))
    def test_mutated_cbor(self, body: bytes, version: int) -> None:
        """The fixture's CBOR with bytes changed, compressed again: the CBOR decoder is reached."""
        self.check(file_header(version) + gzip.compress(body))
