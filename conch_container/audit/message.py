"""The audit messages: ContainerSSH's types, their payloads, and their JSON form.

A message is what ContainerSSH's ``message.Message`` is: a connection id, a
Unix-nanosecond timestamp, a type number, a payload and a channel id. The
payload stays a mapping keyed by ContainerSSH's JSON tags (Go field names
where the Go struct has no tag, as for ``BindHost``), so that a message read
from a log written by a newer gateway keeps the fields this code does not
know, and writing it back loses nothing.

:data:`PAYLOAD_FIELDS` says which fields each type carries and of which kind;
the decoder uses it to print a message as ContainerSSH's decoder does, and the
tests use it to generate every type's payload.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from typing import Any

import attrs


class MessageType(enum.IntEnum):
    """ContainerSSH's message type numbers (``auditlog/message/type.go``)."""

    CONNECT = 0
    DISCONNECT = 1
    AUTH_PASSWORD = 100
    AUTH_PASSWORD_SUCCESSFUL = 101
    AUTH_PASSWORD_FAILED = 102
    AUTH_PASSWORD_BACKEND_ERROR = 103
    AUTH_PUBKEY = 104
    AUTH_PUBKEY_SUCCESSFUL = 105
    AUTH_PUBKEY_FAILED = 106
    AUTH_PUBKEY_BACKEND_ERROR = 107
    AUTH_KEYBOARD_INTERACTIVE_CHALLENGE = 108
    AUTH_KEYBOARD_INTERACTIVE_ANSWER = 109
    AUTH_KEYBOARD_INTERACTIVE_FAILED = 110
    AUTH_KEYBOARD_INTERACTIVE_BACKEND_ERROR = 111
    HANDSHAKE_FAILED = 198
    HANDSHAKE_SUCCESSFUL = 199
    GLOBAL_REQUEST_UNKNOWN = 200
    GLOBAL_REQUEST_DECODE_FAILED = 201
    FORWARD_TCPIP = 202
    CANCEL_FORWARD_TCPIP = 203
    FORWARD_STREAMLOCAL = 204
    CANCEL_FORWARD_STREAMLOCAL = 205
    NEW_CHANNEL = 300
    NEW_CHANNEL_SUCCESSFUL = 301
    NEW_CHANNEL_FAILED = 302
    NEW_CHANNEL_DIRECT_TCPIP = 303
    NEW_CHANNEL_FORWARDED_TCPIP = 304
    NEW_CHANNEL_X11 = 305
    NEW_CHANNEL_DIRECT_STREAMLOCAL = 306
    NEW_CHANNEL_FORWARDED_STREAMLOCAL = 307
    CHANNEL_REQUEST_UNKNOWN = 400
    CHANNEL_REQUEST_DECODE_FAILED = 401
    SETENV = 402
    EXEC = 403
    PTY = 404
    SHELL = 405
    SIGNAL = 406
    SUBSYSTEM = 407
    WINDOW = 408
    X11 = 409
    CLOSE_WRITE = 496
    CLOSE = 497
    EXIT_SIGNAL = 498
    EXIT = 499
    IO = 500
    REQUEST_FAILED = 501


#: The ``stream`` values of an :attr:`MessageType.IO` payload.
STDIN, STDOUT, STDERR = 0, 1, 2


@attrs.frozen
class AuditMessage:
    """One event of a connection, as ContainerSSH records it.

    :ivar connection_id: the connection's id.
    :ivar timestamp: when it happened, in Unix nanoseconds.
    :ivar type: a :class:`MessageType` value; a number this code does not know
        (read from a newer gateway's log) is kept as it is.
    :ivar payload: the payload, keyed by ContainerSSH's JSON tags, e.g.
        ``{"stream": 1, "data": b"..."}``; ``None`` for types without one.
    :ivar channel_id: the SSH channel's number, ``None`` for connection-level events.
    """

    connection_id: str
    timestamp: int
    type: int
    payload: Mapping[str, Any] | None = None
    channel_id: int | None = None


class Kind(enum.Enum):
    """The kind of one payload field: the Go type behind it."""

    TEXT = "text"
    BOOL = "bool"
    UINT32 = "uint32"
    UINT64 = "uint64"
    BYTES = "bytes"
    #: A list of objects; :attr:`Field.items` describes one.
    LIST = "list"


@attrs.frozen
class Field:
    """One payload field: its key (the JSON tag) and kind."""

    name: str
    kind: Kind
    items: tuple[Field, ...] = ()


def _fields(spec: str) -> tuple[Field, ...]:
    """Fields from ``"name:kind name:kind"`` (kinds: t, b, u32, u64, bytes)."""
    kinds = {
        "t": Kind.TEXT,
        "b": Kind.BOOL,
        "u32": Kind.UINT32,
        "u64": Kind.UINT64,
        "bytes": Kind.BYTES,
    }
    return tuple(
        Field(name, kinds[kind]) for name, kind in (item.split(":") for item in spec.split())
    )


_QUESTIONS = Field("questions", Kind.LIST, _fields("question:t echo:b"))
_ANSWERS = Field("answers", Kind.LIST, _fields("question:t answer:t"))
_PASSWORD = _fields("username:t password:bytes")
_PUBKEY = _fields("username:t key:t")
_FORWARD = _fields("BindHost:t BindPort:u32")
_STREAMLOCAL = _fields("Path:t")
_CHANNEL_REQUEST = _fields("requestId:u64 requestType:t payload:bytes")
_WINDOW = "columns:u32 rows:u32 width:u32 height:u32"


@attrs.frozen
class TypeInfo:
    """What ContainerSSH says of one type: its id, its name and its payload's fields.

    :ivar fields: the payload's fields in the Go struct's order (the order the
        decoder prints them in); ``None`` for a type without payload.
    """

    id: str
    name: str
    fields: tuple[Field, ...] | None


def _info(type_id: str, name: str, fields: tuple[Field, ...] | str | None) -> TypeInfo:
    return TypeInfo(type_id, name, _fields(fields) if isinstance(fields, str) else fields)


_T = MessageType
#: Every known type. Ids and names are ContainerSSH's, except 198 and 199, for
#: which ContainerSSH has none (its decoder prints ``invalid``).
TYPES: Mapping[int, TypeInfo] = {
    _T.CONNECT: _info("connect", "Connect", "remoteAddr:t country:t"),
    _T.DISCONNECT: _info("disconnect", "Disconnect", None),
    _T.AUTH_PASSWORD: _info("auth_password", "Password authentication", _PASSWORD),
    _T.AUTH_PASSWORD_SUCCESSFUL: _info(
        "auth_password_successful", "Password authentication successful", _PASSWORD
    ),
    _T.AUTH_PASSWORD_FAILED: _info(
        "auth_password_failed", "Password authentication failed", _PASSWORD
    ),
    _T.AUTH_PASSWORD_BACKEND_ERROR: _info(
        "auth_password_backend_error",
        "Password authentication backend error",
        "username:t password:bytes reason:t",
    ),
    _T.AUTH_PUBKEY: _info("auth_pubkey", "Public key authentication", _PUBKEY),
    _T.AUTH_PUBKEY_SUCCESSFUL: _info(
        "auth_pubkey_successful", "Public key authentication successful", _PUBKEY
    ),
    _T.AUTH_PUBKEY_FAILED: _info("auth_pubkey_failed", "Public key authentication failed", _PUBKEY),
    _T.AUTH_PUBKEY_BACKEND_ERROR: _info(
        "auth_pubkey_backend_error",
        "Public key authentication backend error",
        "username:t key:t reason:t",
    ),
    _T.AUTH_KEYBOARD_INTERACTIVE_CHALLENGE: _info(
        "auth_keyboard_interactive_challenge",
        "Keyboard-interactive authentication challenge",
        (*_fields("username:t instruction:t"), _QUESTIONS),
    ),
    _T.AUTH_KEYBOARD_INTERACTIVE_ANSWER: _info(
        "auth_keyboard_interactive_answer",
        "Keyboard-interactive authentication answer",
        (*_fields("username:t"), _ANSWERS),
    ),
    _T.AUTH_KEYBOARD_INTERACTIVE_FAILED: _info(
        "auth_keyboard_interactive_failed",
        "Keyboard-interactive authentication failed",
        "Username:t",
    ),
    _T.AUTH_KEYBOARD_INTERACTIVE_BACKEND_ERROR: _info(
        "auth_keyboard_interactive_backend_error",
        "Keyboard-interactive authentication backend error",
        "username:t reason:t",
    ),
    _T.HANDSHAKE_FAILED: _info("handshake_failed", "Handshake failed", "reason:t"),
    _T.HANDSHAKE_SUCCESSFUL: _info("handshake_successful", "Handshake successful", "username:t"),
    _T.GLOBAL_REQUEST_UNKNOWN: _info(
        "global_request_unknown", "Unknown global request", "requestType:t"
    ),
    _T.GLOBAL_REQUEST_DECODE_FAILED: _info(
        "global_request_decode_failed",
        "Failed to decode global request",
        (*_CHANNEL_REQUEST, *_fields("reason:t")),
    ),
    _T.FORWARD_TCPIP: _info("forward_tcpip", "Request reverse port forwarding", _FORWARD),
    _T.CANCEL_FORWARD_TCPIP: _info(
        "cancel_forward_tcpip", "Request to stop reverse port forwarding", _FORWARD
    ),
    _T.FORWARD_STREAMLOCAL: _info(
        "forward_streamlocal", "Request reverse socket forwarding", _STREAMLOCAL
    ),
    _T.CANCEL_FORWARD_STREAMLOCAL: _info(
        "cancel_forward_streamlocal", "Request to stop reverse socket forwarding", _STREAMLOCAL
    ),
    _T.NEW_CHANNEL: _info("new_channel", "New channel request", "channelType:t"),
    _T.NEW_CHANNEL_SUCCESSFUL: _info(
        "new_channel_successful", "New channel successful", "channelType:t"
    ),
    _T.NEW_CHANNEL_FAILED: _info(
        "new_channel_failed", "New channel failed", "channelType:t reason:t"
    ),
    _T.NEW_CHANNEL_DIRECT_TCPIP: _info(
        "new_channel_direct_tcpip",
        "New client-to-server port forwarding channel",
        "HostToConnect:t PortToConnect:u32 OriginatorHost:t OriginatorPort:u32",
    ),
    _T.NEW_CHANNEL_FORWARDED_TCPIP: _info(
        "new_channel_forwarded_tcpip",
        "New server-to-client port forwarding channel",
        "ConnectedHost:t ConnectedPort:u32 OriginatorHost:t OriginatorPort:u32",
    ),
    _T.NEW_CHANNEL_X11: _info(
        "new_channel_x11",
        "New server-to-client X11 forwarding channel",
        "OriginatorHost:t OriginatorPort:u32",
    ),
    _T.NEW_CHANNEL_DIRECT_STREAMLOCAL: _info(
        "new_channel_direct_streamlocal",
        "New client-to-server unix socket forwarding channel",
        _STREAMLOCAL,
    ),
    _T.NEW_CHANNEL_FORWARDED_STREAMLOCAL: _info(
        "new_channel_forwarded_streamlocal",
        "New server-to-client unix socket forwarding channel",
        _STREAMLOCAL,
    ),
    _T.CHANNEL_REQUEST_UNKNOWN: _info(
        "channel_request_unknown", "Unknown channel request", _CHANNEL_REQUEST
    ),
    _T.CHANNEL_REQUEST_DECODE_FAILED: _info(
        "channel_request_decode_failed",
        "Failed to decode channel request",
        (*_CHANNEL_REQUEST, *_fields("reason:t")),
    ),
    _T.SETENV: _info("setenv", "Set environment variable", "requestId:u64 name:t value:t"),
    _T.EXEC: _info("exec", "Execute program", "requestId:u64 program:t"),
    _T.PTY: _info(
        "pty",
        "Request interactive terminal",
        f"requestId:u64 term:t {_WINDOW} modelist:bytes",
    ),
    _T.SHELL: _info("shell", "Run shell", "requestId:u64"),
    _T.SIGNAL: _info("signal", "Send signal to running process", "requestId:u64 signal:t"),
    _T.SUBSYSTEM: _info("subsystem", "Request subsystem", "requestId:u64 subsystem:t"),
    _T.WINDOW: _info("window", "Change window size", f"requestId:u64 {_WINDOW}"),
    _T.X11: _info(
        "x11-req",
        "Request X11 forwarding",
        "requestId:u64 singleConnection:b authProtocol:t cookie:t screen:u32",
    ),
    _T.CLOSE_WRITE: _info("close_write", "Close channel for writing", None),
    _T.CLOSE: _info("close", "Close channel", None),
    _T.EXIT_SIGNAL: _info(
        "exit_signal",
        "Program exited with signal",
        "signal:t coreDumped:b errorMessage:t languageTag:t",
    ),
    _T.EXIT: _info("exit", "Program exited", "exitStatus:u32"),
    _T.IO: _info("io", "I/O", "stream:u64 data:bytes"),
    _T.REQUEST_FAILED: _info("request_failed", "Request failed", "requestId:u64 reason:t"),
}

#: What ContainerSSH calls a type it does not know.
UNKNOWN_TYPE = "invalid"


def type_id(t: int) -> str:
    """The machine-readable id of type ``t`` (``"connect"``), ``"invalid"`` if unknown."""
    info = TYPES.get(t)
    return info.id if info is not None else UNKNOWN_TYPE


def type_name(t: int) -> str:
    """The human name of type ``t`` (``"I/O"``), ``"invalid"`` if unknown."""
    info = TYPES.get(t)
    return info.name if info is not None else UNKNOWN_TYPE


def payload_fields(t: int) -> tuple[Field, ...] | None:
    """The payload fields of type ``t``; ``None`` if it has none or is unknown."""
    info = TYPES.get(t)
    return info.fields if info is not None else None


def message_to_json(message: AuditMessage) -> dict[str, Any]:
    """The object ``containerssh-auditlog-decoder`` prints for ``message``.

    Keys in its order; a known type's payload has every field of its Go
    struct, in the struct's order, a missing one with Go's zero value (as
    Go's decoder fills the struct); fields it does not know follow. Byte
    strings become base64 text, as Go's ``encoding/json`` writes ``[]byte``,
    so that tools written against ContainerSSH's decoder keep working.
    """
    return {
        "connectionId": message.connection_id,
        "timestamp": message.timestamp,
        "type": int(message.type),
        "typeId": type_id(message.type),
        "typeName": type_name(message.type),
        "payload": _json_payload(payload_fields(message.type), message.payload),
        "channelId": message.channel_id,
    }


def _json_payload(fields: tuple[Field, ...] | None, payload: Any) -> Any:
    if fields is None or not isinstance(payload, Mapping | None):
        return _jsonable(payload)
    payload = payload or {}
    result = {
        field.name: (
            _json_items(field, payload[field.name])
            if field.name in payload
            else _GO_ZERO[field.kind]
        )
        for field in fields
    }
    known = {field.name for field in fields}
    result.update((str(k), _jsonable(v)) for k, v in payload.items() if k not in known)
    return result


def _json_items(field: Field, value: Any) -> Any:
    if field.kind is Kind.LIST and isinstance(value, list | tuple):
        return [_json_payload(field.items, item) for item in value]
    return _jsonable(value)


_GO_ZERO: Mapping[Kind, Any] = {
    Kind.TEXT: "",
    Kind.BOOL: False,
    Kind.UINT32: 0,
    Kind.UINT64: 0,
    Kind.BYTES: None,
    Kind.LIST: None,
}


def _jsonable(value: Any) -> Any:
    """``value`` with byte strings as base64 text and anything exotic as text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    # A CBOR tag or a value cbor2 made of one (a date, a decimal): kept as its text.
    return str(value)
