"""The forwarding helper's packet protocol, which does not depend on the container engine.

ContainerSSH's guest agent has a ``forward-server`` mode (reference
section 7): run in the user's container, it dials or listens there and
carries each connection's bytes over its stdin and stdout as a stream of
CBOR packets, maps of ``Type``, ``ConnectionId`` and ``Payload``. This
project's own helper speaks the same protocol with two additions that
ContainerSSH's side ignores (it skips unknown packet types and keys):
``CLOSE_WRITE``, a half-close, so a request-response protocol whose client
ends its sending side still gets its answer; and the port actually bound in
the reply to a listening setup, so ``ssh -R 0:...`` learns it.

The decoder here reads only what the protocol uses (maps with text keys,
unsigned integers, text and byte strings, booleans, null) and refuses the
rest, with a bound on every length, before any of it is buffered.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs


class PacketType(enum.IntEnum):
    SETUP = 0
    SUCCESS = 1
    ERROR = 2
    DATA = 3
    NEW_CONNECTION = 4
    CLOSE_CONNECTION = 5
    NO_MORE_CONNECTIONS = 6
    #: This project's: no more DATA from the sender on this connection.
    CLOSE_WRITE = 7


class ConnectionType(enum.IntEnum):
    X11 = 0
    #: Listen in the container (``ssh -R``).
    PORT_FORWARD = 1
    #: Dial from the container (``ssh -L``, ``ssh -D``).
    PORT_DIAL = 2
    SOCKET_FORWARD = 3
    SOCKET_DIAL = 4
    SSH_AGENT = 5


#: The largest payload accepted from the helper; it sends at most 128 KiB.
MAX_PAYLOAD = 16 * 1024 * 1024
#: Nesting allowed in a packet: the packet map and nothing inside it.
_MAX_DEPTH = 2


class ProtocolError(Exception):
    """The helper's output is not a packet stream."""


@attrs.frozen
class Packet:
    type: int
    connection_id: int = 0
    payload: bytes = b""


# -- encoding


def _head(major: int, value: int) -> bytes:
    kind = major << 5
    if value < 24:
        return bytes((kind | value,))
    if value < 0x100:
        return bytes((kind | 24, value))
    if value < 0x10000:
        return struct.pack(">BH", kind | 25, value)
    if value < 0x100000000:
        return struct.pack(">BI", kind | 26, value)
    return struct.pack(">BQ", kind | 27, value)


def _item(value: Any) -> bytes:
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative integers are not part of the protocol")
        return _head(0, value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, Mapping):
        return _head(5, len(value)) + b"".join(_item(k) + _item(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_map(fields: Mapping[str, Any]) -> bytes:
    """One CBOR map (a setup or new-connection payload)."""
    return _item(fields)


_TYPE_KEY = _item("Type")
_ID_KEY = _item("ConnectionId")
_PAYLOAD_KEY = _item("Payload")


def encode_packet(kind: int, connection_id: int = 0, payload: bytes = b"") -> bytes:
    """One packet, its keys in the order ContainerSSH writes them."""
    body = _head(2, len(payload)) + payload if payload else b"\xf6"
    head = b"\xa3" + _TYPE_KEY + _head(0, kind) + _ID_KEY + _head(0, connection_id)
    return head + _PAYLOAD_KEY + body


def setup_payload(
    connection_type: ConnectionType,
    *,
    bind_host: str = "",
    bind_port: int = 0,
    protocol: str = "tcp",
    screen: str = "",
    single_connection: bool = False,
    auth_protocol: str = "",
    auth_cookie: str = "",
) -> bytes:
    return encode_map(
        {
            "ConnectionType": int(connection_type),
            "BindHost": bind_host,
            "BindPort": bind_port,
            "Protocol": protocol,
            "Screen": screen,
            "SingleConnection": single_connection,
            "AuthProtocol": auth_protocol,
            "AuthCookie": auth_cookie,
        }
    )


def new_connection_payload(
    protocol: str,
    connected_address: str,
    connected_port: int,
    originator_address: str = "",
    originator_port: int = 0,
) -> bytes:
    return encode_map(
        {
            "Protocol": protocol,
            "ConnectedAddress": connected_address,
            "ConnectedPort": connected_port,
            "OriginatorAddress": originator_address,
            "OriginatorPort": originator_port,
        }
    )


# -- decoding


class _Incomplete(Exception):
    """The buffer ends inside the item.

    :ivar needed: the length the buffer must reach before trying again (the
        end of the string being read), or 0 if not known.
    """

    def __init__(self, needed: int = 0) -> None:
        super().__init__(needed)
        self.needed = needed


class _Reader:
    """Decodes one CBOR item of the protocol's subset from ``data`` at ``pos``."""

    def __init__(self, data: bytes | bytearray, pos: int) -> None:
        self.data = data
        self.pos = pos

    def _argument(self, info: int) -> int:
        if info < 24:
            return info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None:
            raise ProtocolError("indefinite or reserved length")
        end = self.pos + width
        if end > len(self.data):
            raise _Incomplete
        value = int.from_bytes(self.data[self.pos : end], "big")
        self.pos = end
        return value

    def item(self, depth: int = 0) -> Any:
        if self.pos >= len(self.data):
            raise _Incomplete
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None, 23: None}
            if info not in simple:
                raise ProtocolError(f"unexpected simple value {info}")
            return simple[info]
        value = self._argument(info)
        if major == 0:
            return value
        if major in (2, 3):
            if value > MAX_PAYLOAD:
                raise ProtocolError(f"a string of {value} bytes")
            end = self.pos + value
            if end > len(self.data):
                raise _Incomplete(end)
            raw = bytes(self.data[self.pos : end])
            self.pos = end
            if major == 2:
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("a text string that is not UTF-8") from None
        if major == 5:
            if depth >= _MAX_DEPTH or value > 64:
                raise ProtocolError("a map nested too deep or too large")
            fields: dict[Any, Any] = {}
            for _ in range(value):
                key = self.item(depth + 1)
                fields[key] = self.item(depth + 1)
            return fields
        raise ProtocolError(f"unexpected CBOR major type {major}")


def decode_map(data: bytes) -> dict[str, Any]:
    """A payload that is one CBOR map (setup reply, new connection).

    :raises ProtocolError: for anything else.
    """
    reader = _Reader(data, 0)
    try:
        value = reader.item()
    except _Incomplete:
        raise ProtocolError("a truncated map") from None
    if not isinstance(value, dict) or reader.pos != len(data):
        raise ProtocolError("not a single map")
    return value


def _uint(fields: Mapping[Any, Any], key: str) -> int:
    value = fields.get(key, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{key} is not an unsigned integer")
    return value


def text_field(fields: Mapping[Any, Any], key: str) -> str:
    value = fields.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{key} is not text")
    return value


def uint_field(fields: Mapping[Any, Any], key: str) -> int:
    return _uint(fields, key)


class PacketDecoder:
    """Splits the helper's output into :class:`Packet` objects as it arrives.

    Holds at most one incomplete packet (bounded by :data:`MAX_PAYLOAD`).

    :param deliver: called with each packet, in order.
    """

    def __init__(self, deliver: Callable[[Packet], Any]) -> None:
        # The start of an incomplete packet, in the pieces it came in: joined
        # once, when enough has arrived, rather than copied at every piece.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._needed = 0
        self._deliver = deliver

    def feed(self, data: bytes) -> None:
        """Take one chunk.

        :raises ProtocolError: for output that is no packet stream.
        """
        if self._pending:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._needed:
                return
            source = b"".join(self._pending)
            self._pending = []
        else:
            source = bytes(data)
        consumed = 0
        needed = 0
        for packet, end in _packets(source):
            if packet is None:
                needed = end
                break
            consumed = end
            self._deliver(packet)
        rest = source[consumed:] if consumed else source
        if not rest:
            self._pending_size = 0
            return
        if len(rest) > MAX_PAYLOAD + 64:
            raise ProtocolError("a packet larger than the protocol allows")
        self._pending = [rest]
        self._pending_size = len(rest)
        self._needed = max(needed - consumed, len(rest) + 1)


def _packets(data: bytes) -> Iterator[tuple[Packet | None, int]]:
    """Each complete packet and where it ends; last, for an incomplete one,
    None and the length ``data`` must reach for it (0: unknown)."""
    pos = 0
    while pos < len(data):
        reader = _Reader(data, pos)
        try:
            value = reader.item()
        except _Incomplete as e:
            yield None, e.needed
            return
        if not isinstance(value, dict):
            raise ProtocolError("a packet that is not a map")
        payload = value.get("Payload")
        if payload is None:
            payload = b""
        elif not isinstance(payload, bytes):
            raise ProtocolError("a packet whose payload is not a byte string")
        yield Packet(_uint(value, "Type"), _uint(value, "ConnectionId"), payload), reader.pos
        pos = reader.pos


def end_helper(session: Any) -> Any:
    """End a helper's backend session: the end of its stdin makes it exit, so
    its stream is closed without killing it (a kill is one more exec for the
    engine, per forwarded connection). Returns the session's close awaitable."""
    shutdown = getattr(session, "shutdown", None)
    if shutdown is None:
        return session.close()
    session.close_stdin()
    return shutdown(kill=False)
