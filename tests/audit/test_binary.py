"""The ``binary`` encoder: ContainerSSH's header, one gzip stream of CBOR maps, flushes."""

from __future__ import annotations

import gzip
import io
import struct
import zlib

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from conch_container.audit.codec import codec_for
from conch_container.audit.codec.binary import HEADER_SIZE, BinaryCodec, BinaryEncoder
from conch_container.audit.codec.binaryread import BinaryLogReader, StreamEnd
from conch_container.audit.message import AuditMessage, MessageType
from conch_container.interfaces import IAuditCodec, IAuditEncoder

from .strategies import any_messages, messages_of, unknown_messages

IO_MESSAGE = AuditMessage(
    connection_id="0123456789abcdef0123456789abcdef",
    timestamp=1_700_000_000_000_000_000,
    type=MessageType.IO,
    payload={"stream": 1, "data": b"hello\n"},
    channel_id=3,
)


def encode(messages: list[AuditMessage], *, finish: bool = True) -> bytes:
    """A whole stream: each message flushed, then (unless told not to) the trailer."""
    encoder = BinaryEncoder()
    data = b"".join(encoder.encode(m) + encoder.flush() for m in messages)
    return data + encoder.finish() if finish else data


def decode(data: bytes) -> tuple[list[AuditMessage], BinaryLogReader]:
    reader = BinaryLogReader(io.BytesIO(data))
    return list(reader), reader


class EncoderTests(SynchronousTestCase):
    def test_interfaces(self) -> None:
        """The codec and its encoders provide the audit interfaces; the name is ``binary``."""
        codec = codec_for("binary")
        self.assertIsInstance(codec, BinaryCodec)
        self.assertTrue(verifyObject(IAuditCodec, codec))
        self.assertEqual(codec.name, "binary")
        self.assertTrue(verifyObject(IAuditEncoder, codec.encoder("c", 0)))

    def test_unknown_format(self) -> None:
        """``none`` and unknown names are no format; the error lists the known ones."""
        for name in ("none", "cbor"):
            with self.assertRaises(ValueError) as raised:
                codec_for(name)
            self.assertIn("known: ", str(raised.exception))
            self.assertIn("binary", str(raised.exception))

    def test_header_first(self) -> None:
        """The first bytes returned are ContainerSSH's header, version 2, then gzip."""
        encoder = BinaryEncoder()
        data = encoder.encode(IO_MESSAGE) + encoder.flush()
        self.assertEqual(data[:32], b"ContainerSSH-Auditlog" + b"\0" * 11)
        self.assertEqual(struct.unpack("<Q", data[32:HEADER_SIZE]), (2,))
        self.assertEqual(data[HEADER_SIZE : HEADER_SIZE + 2], b"\x1f\x8b")

    def test_header_when_flushed_first(self) -> None:
        """A stream flushed or finished before any message still starts with the header."""
        encoder = BinaryEncoder()
        data = encoder.flush() + encoder.finish()
        self.assertEqual(data[:21], b"ContainerSSH-Auditlog")
        self.assertEqual(decode(data)[0], [])
        self.assertEqual(decode(data)[1].end, StreamEnd.COMPLETE)

    def test_cbor_maps(self) -> None:
        """The body is top-level CBOR maps with ContainerSSH's keys, bytes as byte strings."""
        body = gzip.decompress(encode([IO_MESSAGE, IO_MESSAGE])[HEADER_SIZE:])
        decoder = cbor2.CBORDecoder(io.BytesIO(body))
        first = decoder.decode()
        self.assertEqual(
            first,
            {
                "connectionId": IO_MESSAGE.connection_id,
                "timestamp": IO_MESSAGE.timestamp,
                "type": 500,
                "payload": {"stream": 1, "data": b"hello\n"},
                "channelId": 3,
            },
        )
        self.assertEqual(decoder.decode(), first)

    def test_flush_makes_decodable(self) -> None:
        """After flush, what was returned so far decodes to every message encoded."""
        encoder = BinaryEncoder()
        data = encoder.encode(IO_MESSAGE) + encoder.encode(IO_MESSAGE)
        data += encoder.flush()
        messages, reader = decode(data)
        self.assertEqual(messages, [IO_MESSAGE, IO_MESSAGE])
        self.assertEqual(reader.end, StreamEnd.UNTERMINATED)

    def test_finish_writes_trailer(self) -> None:
        """finish() ends the gzip stream: standard gzip reads it, the reader says complete."""
        data = encode([IO_MESSAGE])
        gzip.decompress(data[HEADER_SIZE:])
        self.assertEqual(decode(data)[1].end, StreamEnd.COMPLETE)
        self.assertIsNone(decode(data)[1].warning)

    def test_nothing_after_finish(self) -> None:
        """An encoder refuses messages after its trailer."""
        encoder = BinaryEncoder()
        encoder.finish()
        self.assertRaises(RuntimeError, encoder.encode, IO_MESSAGE)

    def test_memoryview_data(self) -> None:
        """I/O data handed over as a memoryview is written as a byte string."""
        message = AuditMessage("c", 1, MessageType.IO, {"stream": 2, "data": memoryview(b"ab")})
        (decoded,), _ = decode(encode([message]))
        self.assertEqual(decoded.payload, {"stream": 2, "data": b"ab"})

    def test_compresses(self) -> None:
        """Repetitive output shrinks (the level trades ratio for speed, not for nothing)."""
        text = b"".join(b"-rw-r--r-- 1 user group %8d file%d\n" % (i, i) for i in range(1000))
        message = AuditMessage("c", 1, MessageType.IO, {"stream": 1, "data": text})
        self.assertLess(len(encode([message])), len(text) // 3)


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_every_type(self, data: st.DataObject) -> None:
        """A message of every type, with every field of its payload, reads back equal."""
        messages = [data.draw(messages_of(t), label=t.name) for t in MessageType]
        decoded, reader = decode(encode(messages))
        self.assertEqual(decoded, messages)
        self.assertEqual(reader.end, StreamEnd.COMPLETE)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(any_messages() | unknown_messages, max_size=12), st.data())
    def test_flushed_anywhere(self, messages: list[AuditMessage], data: st.DataObject) -> None:
        """Flushes between any messages, or none, change nothing; unknown data is kept."""
        encoder = BinaryEncoder()
        stream = b""
        for message in messages:
            stream += encoder.encode(message)
            if data.draw(st.booleans()):
                stream += encoder.flush()
        decoded, reader = decode(stream + encoder.finish())
        self.assertEqual(decoded, messages)
        self.assertEqual(reader.end, StreamEnd.COMPLETE)

    def test_levels_agree(self) -> None:
        """Any zlib level makes the same stream content."""
        for level in (0, 1, 6, 9):
            encoder = BinaryEncoder(level)
            data = encoder.encode(IO_MESSAGE) + encoder.finish()
            self.assertEqual(decode(data)[0], [IO_MESSAGE])
            self.assertEqual(zlib.decompress(data[HEADER_SIZE:], 31)[:1], b"\xa5")
