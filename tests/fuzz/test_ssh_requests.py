"""Fuzzing the session channel request parsers of ``conch_container.ssh.requests``.

Each parser may raise only ``PayloadError`` (``env`` also ``VariableRefused``,
its documented refusal of a variable no program can be given), on arbitrary
bytes and on well-formed payloads with extreme values; what Conch's packers
and the module's encoders write must come back unchanged.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import example
from hypothesis import strategies as st
from twisted.conch.ssh import common
from twisted.conch.ssh.session import (
    packRequest_pty_req,
    packRequest_window_change,
    parseRequest_pty_req,
)
from twisted.trial.unittest import SynchronousTestCase

from conch_container.interfaces import ExitStatus
from conch_container.ssh.requests import (
    PayloadError,
    PayloadReader,
    VariableRefused,
    encode_modes,
    exit_request,
    parse_env,
    parse_pty_req,
    parse_string,
    parse_window_change,
)
from tests.fuzz import fuzz, note

uint32s = st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1])
#: Texts a client may send: any Unicode, some of it huge.
wire_texts = st.text(max_size=50) | st.integers(0, 70_000).map(lambda n: "x" * n)
modes = st.lists(st.tuples(st.integers(1, 255), uint32s), max_size=40)


def ns(value: bytes | str) -> bytes:
    return common.NS(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or SSH strings and integers glued together, cut or padded."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=80))
    parts = draw(
        st.lists(
            st.binary(max_size=30).map(common.NS)
            | uint32s.map(lambda n: struct.pack(">L", n))
            | st.binary(max_size=4),
            max_size=8,
        )
    )
    data = b"".join(parts)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


#: Well-formed payloads of each request.
WELL_FORMED = {
    "exec/subsystem/signal": st.text(max_size=30).map(ns),
    "env": st.tuples(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), st.text(max_size=20)
    ).map(lambda pair: ns(pair[0]) + ns(pair[1].replace("\x00", ""))),
    "pty-req": st.tuples(st.text(max_size=10), st.lists(uint32s, min_size=4, max_size=4), modes)
    .filter(lambda parts: "\x00" not in parts[0])
    .map(lambda parts: ns(parts[0]) + struct.pack(">4L", *parts[1]) + ns(encode_modes(parts[2]))),
    "window-change": st.lists(uint32s, min_size=4, max_size=4).map(
        lambda sizes: struct.pack(">4L", *sizes)
    ),
}

PARSERS = {
    "exec/subsystem/signal": (parse_string, (PayloadError,)),
    "env": (parse_env, (PayloadError, VariableRefused)),
    "pty-req": (parse_pty_req, (PayloadError,)),
    "window-change": (parse_window_change, (PayloadError,)),
}


class ArbitraryPayloadTests(SynchronousTestCase):
    @fuzz(
        st.sampled_from(sorted(PARSERS)).flatmap(
            lambda request: st.tuples(st.just(request), WELL_FORMED[request] | payloads())
        ),
        expect=("parsed", "rejected"),
    )
    @example(("pty-req", ns("xterm\x00") + b"\x00" * 16 + ns(b"")))
    @example(("env", ns("A=B") + ns("x")))
    @example(("exec/subsystem/signal", ns(b"\xff")))
    @example(("exec/subsystem/signal", b"\xff\xff\xff\xff"))
    def test_any_payload(self, payload: tuple[str, bytes]) -> None:
        """Any payload is decoded or refused with the parser's documented error."""
        request, data = payload
        parser, errors = PARSERS[request]
        try:
            result: Any = parser(data)
        except errors as error:
            self.assertTrue(str(error))
            note("rejected")
            return
        note("parsed")
        self.assertIsNotNone(result)

    @fuzz(
        payloads(),
        st.lists(st.sampled_from(["uint32", "string", "text", "rest"]), max_size=8),
        expect=("read", "short"),
    )
    def test_reader(self, data: bytes, reads: list[str]) -> None:
        """``PayloadReader`` reads what slicing reads, and is short exactly when slicing is."""
        reader = PayloadReader(data)
        offset = 0
        for read in reads:
            expected: Any
            if read == "rest":
                expected, offset = data[offset:], len(data)
            else:
                if len(data) - offset < 4:
                    self.assertRaises(PayloadError, getattr(reader, read))
                    note("short")
                    return
                (value,) = struct.unpack(">L", data[offset : offset + 4])
                if read == "uint32":
                    expected, offset = value, offset + 4
                else:
                    if len(data) - offset - 4 < value:
                        self.assertRaises(PayloadError, getattr(reader, read))
                        note("short")
                        return
                    expected = data[offset + 4 : offset + 4 + value]
                    offset += 4 + value
                    if read == "text":
                        try:
                            expected = expected.decode("utf-8")
                        except UnicodeDecodeError:
                            self.assertRaises(PayloadError, reader.text)
                            note("not UTF-8")
                            return
            self.assertEqual(getattr(reader, read)(), expected)
            note("read")


class RoundTripTests(SynchronousTestCase):
    @fuzz(
        st.text(max_size=50).filter(lambda t: "\x00" not in t),
        uint32s,
        uint32s,
        uint32s,
        uint32s,
        modes,
        expect=("round trip",),
    )
    def test_pty_req(
        self, term: str, rows: int, columns: int, width: int, height: int, entries: list[Any]
    ) -> None:
        """A ``pty-req`` as Conch packs it parses back; its modes decode back with Conch."""
        encoded = encode_modes(entries)
        data = packRequest_pty_req(
            term.encode("utf-8", "surrogatepass"), (rows, columns, width, height), encoded
        )
        try:
            term.encode("utf-8")
        except UnicodeEncodeError:
            self.assertRaises(PayloadError, parse_pty_req, data)
            note("not UTF-8")
            return
        self.assertEqual(parse_pty_req(data), (term, columns, rows, width, height, encoded))
        self.assertEqual(parseRequest_pty_req(data)[2], entries)
        note("round trip")

    @fuzz(uint32s, uint32s, uint32s, uint32s, expect=("round trip",))
    def test_window_change(self, rows: int, columns: int, width: int, height: int) -> None:
        """A ``window-change`` as Conch packs it parses back."""
        data = packRequest_window_change((rows, columns, width, height))
        self.assertEqual(parse_window_change(data), (columns, rows, width, height))
        note("round trip")

    @fuzz(wire_texts, expect=("round trip",))
    def test_string(self, text: str) -> None:
        """``exec``, ``subsystem`` and ``signal`` carry one string: any UTF-8 text parses back."""
        data = ns(text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.assertRaises(PayloadError, parse_string, data)
            note("not UTF-8")
            return
        self.assertEqual(parse_string(data), text)
        note("round trip")

    @fuzz(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True) | st.text(max_size=20),
        wire_texts,
        expect=("round trip", "refused"),
    )
    def test_env(self, name: str, value: str) -> None:
        """An ``env`` request parses back when a program can be given the variable."""
        try:
            result = parse_env(ns(name) + ns(value))
        except (PayloadError, VariableRefused) as error:
            self.assertTrue(str(error))
            note("refused")
            return
        self.assertEqual(result, (name, value))
        note("round trip")

    @fuzz(
        st.one_of(
            st.builds(ExitStatus, code=st.integers(0, 2**32 - 1)),
            st.builds(
                ExitStatus,
                signal=st.text(max_size=20) | st.sampled_from(["SIGKILL", "TERM", "SIGSEGV"]),
                core_dumped=st.booleans(),
                message=st.text(max_size=30).filter(lambda t: not _has_surrogate(t)),
            ),
        ),
        expect=("exit-status", "exit-signal"),
    )
    def test_exit_request(self, status: ExitStatus) -> None:
        """``exit-status`` and ``exit-signal`` payloads read back as RFC 4254 lays them out."""
        request, payload = exit_request(status)
        reader = PayloadReader(payload)
        if status.signal is None:
            self.assertEqual(request, b"exit-status")
            self.assertEqual(reader.uint32(), status.code)
        else:
            self.assertEqual(request, b"exit-signal")
            name = status.signal.removeprefix("SIG").encode("ascii", "replace")
            self.assertEqual(reader.string(), name)
            remaining = reader.rest()
            self.assertEqual(remaining[:1], b"\x01" if status.core_dumped else b"\x00")
            rest = PayloadReader(remaining[1:])
            self.assertEqual(rest.text(), status.message)
            self.assertEqual(rest.string(), b"")  # language tag
            self.assertEqual(rest.rest(), b"")
        note(request.decode())


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
