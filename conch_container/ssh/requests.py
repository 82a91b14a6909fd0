"""Strict decoding of session channel request payloads (RFC 4254, section 6).

Conch's own parsers accept truncated payloads silently; these raise
:class:`PayloadError` instead, so a malformed request is answered with failure
and logged as ``SSH_DECODE_FAILED`` rather than acted on with garbage.
"""

from __future__ import annotations

import struct

from twisted.conch.ssh.common import NS

from conch_container.interfaces import ExitStatus


class PayloadError(ValueError):
    """A request payload could not be decoded."""


class RequestRefused(Exception):
    """A channel request is answered with failure; ``reason`` goes to the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProgramStartFailed(RequestRefused):
    """The backend could not start the program; ``user_message`` is for the client's stderr."""

    def __init__(self, reason: str, user_message: bytes) -> None:
        super().__init__(reason)
        self.user_message = user_message


#: The exit status the client gets when its program could not be started.
START_FAILED_EXIT_STATUS = 1


class PayloadReader:
    """Reads SSH wire types from a payload, raising :class:`PayloadError` when it is short."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def uint32(self) -> int:
        end = self._offset + 4
        if end > len(self._data):
            raise PayloadError("payload too short")
        (value,) = struct.unpack(">L", self._data[self._offset : end])
        self._offset = end
        return int(value)

    def string(self) -> bytes:
        length = self.uint32()
        end = self._offset + length
        if end > len(self._data):
            raise PayloadError("string runs past the end of the payload")
        value = self._data[self._offset : end]
        self._offset = end
        return value

    def rest(self) -> bytes:
        """Everything not read yet."""
        value = self._data[self._offset :]
        self._offset = len(self._data)
        return value

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("string is not valid UTF-8") from None


def parse_string(data: bytes) -> str:
    """The single UTF-8 string of an ``exec``, ``subsystem`` or ``signal`` request."""
    return PayloadReader(data).text()


def parse_env(data: bytes) -> tuple[str, str]:
    """``env``: the variable's name and value."""
    reader = PayloadReader(data)
    return reader.text(), reader.text()


def parse_pty_req(data: bytes) -> tuple[str, int, int, int, int, bytes]:
    """``pty-req``: terminal type, columns, rows, width and height in pixels, encoded modes."""
    reader = PayloadReader(data)
    term = reader.text()
    columns, rows, width, height = (reader.uint32() for _ in range(4))
    modes = reader.string()
    return term, columns, rows, width, height, modes


def parse_window_change(data: bytes) -> tuple[int, int, int, int]:
    """``window-change``: columns, rows, width and height in pixels."""
    reader = PayloadReader(data)
    columns, rows, width, height = (reader.uint32() for _ in range(4))
    return columns, rows, width, height


def encode_modes(modes: list[tuple[int, int]]) -> bytes:
    """Encode terminal modes as they travel in ``pty-req`` (ending with ``TTY_OP_END``)."""
    return b"".join(struct.pack(">BL", opcode, value) for opcode, value in modes) + b"\x00"


def exit_request(status: ExitStatus) -> tuple[bytes, bytes]:
    """The ``exit-status`` or ``exit-signal`` request (type and payload) for a status."""
    if status.signal is not None:
        name = status.signal.removeprefix("SIG")
        return b"exit-signal", (
            NS(name.encode("ascii", "replace"))
            + (b"\x01" if status.core_dumped else b"\x00")
            + NS(status.message.encode("utf-8"))
            + NS(b"")
        )
    assert status.code is not None
    return b"exit-status", struct.pack(">L", status.code)
