"""Reading binary logs: ContainerSSH's own, version 1, and logs cut short or damaged."""

from __future__ import annotations

import io
import json
import os
import random
import zlib

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from conch_container.audit.codec.asciicast import asciicast_from_messages
from conch_container.audit.codec.binary import HEADER_SIZE, BinaryEncoder, file_header
from conch_container.audit.codec.binaryread import (
    AuditLogFormatError,
    BinaryLogReader,
    StreamEnd,
)
from conch_container.audit.decodecli import json_line
from conch_container.audit.message import AuditMessage, MessageType, message_to_json

from .strategies import any_messages
from .test_binary import decode, encode

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
CONNECTION = "b55b141aab3741d7b7858db45aa129e8"
#: A message may decode a few bytes before its flush ends: the flush closes
#: the deflate block (an end code of up to 15 bits, padding) and adds an empty
#: stored block (3 bits, then 4 bytes of lengths), none of which carries data.
FLUSH_TAIL = 8


def fixture(name: str) -> bytes:
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def gzip_of(body: bytes, *, finish: bool) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    data = compressor.compress(body)
    return data + compressor.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)


class ContainerSSHFixtureTests(SynchronousTestCase):
    """``auditlog-v1-0.4.0.bin``: a password login to a shell, written by ContainerSSH 0.4.0."""

    def setUp(self) -> None:
        self.messages, self.reader = decode(fixture("auditlog-v1-0.4.0.bin"))

    def test_types(self) -> None:
        """The eleven messages, in order."""
        T = MessageType
        self.assertEqual(
            [m.type for m in self.messages],
            [
                T.CONNECT,
                T.AUTH_PASSWORD,
                T.AUTH_PASSWORD_SUCCESSFUL,
                T.HANDSHAKE_SUCCESSFUL,
                T.NEW_CHANNEL_SUCCESSFUL,
                T.PTY,
                T.SHELL,
                T.CLOSE_WRITE,
                T.EXIT,
                T.CLOSE,
                T.DISCONNECT,
            ],
        )
        self.assertEqual({m.connection_id for m in self.messages}, {CONNECTION})
        self.assertEqual(self.reader.version, 1)

    def test_payloads(self) -> None:
        """Connect, password, pty and exit payloads, with ContainerSSH's keys."""
        connect, password, success, handshake = self.messages[:4]
        self.assertEqual(connect.payload, {"remoteAddr": "::1", "country": "XX"})
        self.assertEqual(connect.timestamp, 1625081015047410200)
        self.assertEqual(password.payload, {"username": "foo", "password": b"bar"})
        self.assertEqual(success.payload, {"username": "foo", "password": b"bar"})
        self.assertEqual(handshake.payload, {"username": "foo"})
        self.assertEqual(self.messages[4].payload, {"channelType": "session"})
        pty = self.messages[5].payload or {}
        self.assertEqual(
            (pty["requestId"], pty["term"], pty["columns"], pty["rows"]),
            (0, "xterm-256color", 120, 30),
        )
        self.assertEqual((pty["width"], pty["height"]), (640, 480))
        self.assertIsInstance(pty["modelist"], bytes)
        self.assertEqual(self.messages[6].payload, {"requestId": 1})
        self.assertEqual(self.messages[8].payload, {"exitStatus": 0})
        self.assertIsNone(self.messages[7].payload)

    def test_channels(self) -> None:
        """Connection-level messages have no channel; the session's are on channel 0."""
        self.assertEqual(
            [m.channel_id for m in self.messages],
            [None, None, None, None, 0, 0, 0, 0, 0, 0, None],
        )

    def test_unterminated(self) -> None:
        """ContainerSSH wrote no gzip end marker: every message is read, with a warning."""
        self.assertEqual(self.reader.end, StreamEnd.UNTERMINATED)
        self.assertEqual(
            self.reader.warning, "the stream ended without its end marker, after 11 whole messages"
        )

    def test_written_back(self) -> None:
        """Our encoder writes the same messages back, as version 2."""
        messages, reader = decode(encode(self.messages))
        self.assertEqual(messages, self.messages)
        self.assertEqual(reader.version, 2)


class Version1Tests(SynchronousTestCase):
    """Version 1: one indefinite-length CBOR array of messages (made here with cbor2)."""

    MESSAGES = [
        {"connectionId": "c", "timestamp": 1, "type": 0, "payload": None, "channelId": None},
        {"connectionId": "c", "timestamp": 2, "type": 999, "payload": {"x": b"1"}, "channelId": 7},
    ]

    def body(self) -> bytes:
        return cbor2.dumps(self.MESSAGES, indefinite_containers=True)

    def test_complete(self) -> None:
        """A closed array in a finished gzip stream: every message, no warning."""
        messages, reader = decode(file_header(1) + gzip_of(self.body(), finish=True))
        self.assertEqual(
            messages,
            [AuditMessage("c", 1, 0), AuditMessage("c", 2, 999, {"x": b"1"}, 7)],
        )
        self.assertEqual(reader.end, StreamEnd.COMPLETE)

    def test_array_not_closed(self) -> None:
        """An array cut after a whole message: the messages, and a warning."""
        body = self.body()[:-1]
        messages, reader = decode(file_header(1) + gzip_of(body, finish=False))
        self.assertEqual(len(messages), 2)
        self.assertEqual(reader.end, StreamEnd.UNTERMINATED)

    def test_cut_in_message(self) -> None:
        """An array cut inside its second message: the first, and a truncation warning."""
        body = self.body()[:-5]
        messages, reader = decode(file_header(1) + gzip_of(body, finish=False))
        self.assertEqual(messages, [AuditMessage("c", 1, 0)])
        self.assertEqual(reader.end, StreamEnd.TRUNCATED)
        self.assertEqual(
            reader.warning, "the stream ended early, inside message 2; 1 whole message read"
        )

    def test_not_an_array(self) -> None:
        """A version 1 body that is not an array is reported as damaged."""
        body = cbor2.dumps(self.MESSAGES[0])
        messages, reader = decode(file_header(1) + gzip_of(body, finish=True))
        self.assertEqual((messages, reader.end), ([], StreamEnd.CORRUPT))


class TruncationTests(SynchronousTestCase):
    """A gateway killed mid-write leaves a prefix of the stream; it reads up to the cut."""

    def check_cut(self, messages: list[AuditMessage], data: bytes, ends: list[int], cut: int):
        decoded, reader = decode(data[:cut])
        flushed = sum(1 for end in ends if end <= cut)
        self.assertEqual(decoded, messages[: len(decoded)])
        self.assertIn(len(decoded), (flushed, flushed + 1))
        if len(decoded) > flushed:
            self.assertGreater(cut, ends[flushed] - FLUSH_TAIL)
        self.assertIsNotNone(reader.warning)
        self.assertIn(reader.end, (StreamEnd.UNTERMINATED, StreamEnd.TRUNCATED))

    def stream(self, messages: list[AuditMessage]) -> tuple[bytes, list[int]]:
        """Each message encoded and flushed; and where each flush ended."""
        encoder = BinaryEncoder()
        data, ends = b"", []
        for message in messages:
            data += encoder.encode(message) + encoder.flush()
            ends.append(len(data))
        return data, ends

    def test_every_offset(self) -> None:
        """Cut at every byte after the header: exactly the flushed messages, and a warning."""
        rng = random.Random(7)
        messages = [
            AuditMessage("c" * 32, i, MessageType.IO, {"stream": 1, "data": rng.randbytes(n)}, 0)
            for i, n in enumerate([0, 5, 300, 40, 2000, 1])
        ]
        data, ends = self.stream(messages)
        for cut in range(HEADER_SIZE, len(data)):
            self.check_cut(messages, data, ends, cut)
        decoded, reader = decode(data)
        self.assertEqual((decoded, reader.end), (messages, StreamEnd.UNTERMINATED))

    @settings(max_examples=40, deadline=None)
    @given(st.lists(any_messages(), min_size=1, max_size=10), st.data())
    def test_random_offsets(self, messages: list[AuditMessage], data: st.DataObject) -> None:
        """Any messages, cut at random offsets: never an exception, never a wrong message."""
        stream, ends = self.stream(messages)
        for _ in range(10):
            cut = data.draw(st.integers(HEADER_SIZE, len(stream)), label="cut")
            self.check_cut(messages, stream, ends, cut)

    def test_cut_header(self) -> None:
        """A file cut inside its header (or empty) holds no message: a warning, no error."""
        for cut in (0, 1, 21, 32, 39):
            messages, reader = decode(file_header()[:cut])
            self.assertEqual((messages, reader.end), ([], StreamEnd.TRUNCATED))
            self.assertIn("inside the file header", reader.warning or "")

    def test_after_trailer_finish(self) -> None:
        """Cut inside the gzip trailer: every message, and the missing end is reported."""
        data = encode([AuditMessage("c", 1, MessageType.SHELL, {"requestId": 0}, 0)])
        messages, reader = decode(data[:-3])
        self.assertEqual(len(messages), 1)
        self.assertEqual(reader.end, StreamEnd.UNTERMINATED)


class BadInputTests(SynchronousTestCase):
    def test_not_an_audit_log(self) -> None:
        """Other data is refused before any message, with a clear error."""
        for data in (b"hello world, this is not a log at all.....", b"\x1f\x8b\x08\x00"):
            with self.assertRaises(AuditLogFormatError) as raised:
                BinaryLogReader(io.BytesIO(data))
            self.assertEqual(
                str(raised.exception),
                "not an audit log (it does not start with ContainerSSH-Auditlog)",
            )

    def test_unknown_version(self) -> None:
        """A version this reader does not know is refused, naming the version."""
        for version in (0, 3, 2**64 - 1):
            with self.assertRaises(AuditLogFormatError) as raised:
                BinaryLogReader(io.BytesIO(file_header(version) + b"x"))
            self.assertIn(f"version {version} is not supported", str(raised.exception))

    def test_damaged_gzip(self) -> None:
        """Damaged compressed data ends the log with an error, after what was read."""
        good = encode([AuditMessage("c", 1, 0)], finish=False)
        messages, reader = decode(good + b"\xff" * 20)
        self.assertEqual(len(messages), 1)
        self.assertEqual(reader.end, StreamEnd.CORRUPT)
        self.assertIn("damaged", reader.warning or "")
        messages, reader = decode(file_header() + b"not gzip at all")
        self.assertEqual((messages, reader.end), ([], StreamEnd.CORRUPT))

    def test_not_messages(self) -> None:
        """CBOR that is not messages ends the log with an error naming the message."""
        for item in (5, {"type": "x"}, {"type": 1, "payload": [1]}, {"type": 1, "channelId": "a"}):
            body = cbor2.dumps({"connectionId": "c", "timestamp": 1, "type": 0}) + cbor2.dumps(item)
            messages, reader = decode(file_header() + gzip_of(body, finish=True))
            self.assertEqual(messages, [AuditMessage("c", 1, 0)])
            self.assertEqual(reader.end, StreamEnd.CORRUPT)
            self.assertIn("message 2:", reader.warning or "")

    def test_invalid_utf8_text(self) -> None:
        """Text that is not UTF-8 (Go strings are bytes) is kept with U+FFFD."""
        head = {"connectionId": "c", "timestamp": 1, "type": 403}
        # A map of five entries: the three above, then "payload": {"program": <ff 41>}.
        body = b"\xa4" + cbor2.dumps(head)[1:] + cbor2.dumps("payload") + b"\xa1"
        body += cbor2.dumps("program") + b"\x62\xff\x41"
        (message,), reader = decode(file_header() + gzip_of(body, finish=True))
        self.assertEqual(message.payload, {"program": "\ufffdA"})
        self.assertEqual(reader.end, StreamEnd.COMPLETE)

    def test_concatenated_members(self) -> None:
        """Two gzip members read as one stream, as gzip and Go's reader read them."""
        one = cbor2.dumps({"connectionId": "c", "timestamp": 1, "type": 0})
        data = file_header() + gzip_of(one, finish=True) + gzip_of(one, finish=True)
        messages, reader = decode(data)
        self.assertEqual((len(messages), reader.end), (2, StreamEnd.COMPLETE))


class LazinessTests(SynchronousTestCase):
    def test_reads_as_it_goes(self) -> None:
        """The first message comes before the file has been read: logs of any size fit."""
        rng = random.Random(3)
        messages = [
            AuditMessage("c", i, MessageType.IO, {"stream": 1, "data": rng.randbytes(32768)}, 0)
            for i in range(200)
        ]
        source = io.BytesIO(encode(messages))
        iterator = iter(BinaryLogReader(source))
        self.assertEqual(next(iterator), messages[0])
        self.assertLess(source.tell(), len(source.getvalue()) // 10)


def read_all(data: bytes) -> BinaryLogReader | None:
    """Read, print and convert ``data``; ``None`` if it is refused as no audit log."""
    try:
        reader = BinaryLogReader(io.BytesIO(data))
    except AuditLogFormatError:
        return None
    messages = list(reader)
    for message in messages:
        json.loads(json_line(message_to_json(message)))
    b"".join(asciicast_from_messages(messages)).decode()
    return reader


class HostileInputTests(SynchronousTestCase):
    """Whatever the bytes: refused up front, or read to a stated end, printed and converted."""

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes(self, data: bytes) -> None:
        """Arbitrary files: refused, or read to an end; no other exception."""
        for prefix in (b"", file_header(1), file_header(2)):
            reader = read_all(prefix + data)
            if reader is not None:
                self.assertIsNotNone(reader.end)

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=300), st.sampled_from([1, 2]), st.booleans())
    def test_any_compressed_bytes(self, body: bytes, version: int, finish: bool) -> None:
        """Arbitrary CBOR-ish data in a valid gzip stream reads to a stated end."""
        reader = read_all(file_header(version) + gzip_of(body, finish=finish))
        assert reader is not None
        self.assertIsNotNone(reader.end)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 423), st.integers(0, 255)), min_size=1, max_size=4))
    def test_mutated_fixture(self, changes: list[tuple[int, int]]) -> None:
        """ContainerSSH's log with bytes changed: refused, or read to a stated end."""
        data = bytearray(fixture("auditlog-v1-0.4.0.bin"))
        for offset, value in changes:
            data[offset] = value
        reader = read_all(bytes(data))
        if reader is not None:
            self.assertIsNotNone(reader.end)
