"""Strict decoding of session channel request payloads (RFC 4254, section 6).

Conch's own parsers accept truncated payloads silently; these raise
:class:`PayloadError` instead, so a malformed request is answered with failure
and logged as ``SSH_DECODE_FAILED`` rather than acted on with garbage. Sizes
that no ordinary client comes near are refused the same way, and
:class:`EnvBudget` bounds what the ``env`` requests of one channel may carry.
"""

from __future__ import annotations

import struct

from twisted.conch.ssh.common import NS

from conch_container.envnames import env_rejection, value_problem, variable_problem
from conch_container.errors import RequestRejected
from conch_container.interfaces import ExitStatus


class PayloadError(ValueError):
    """A request payload could not be decoded."""


class RequestRefused(Exception):
    """A channel request is answered with failure; ``reason`` goes to the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VariableRefused(RequestRefused):
    """An ``env`` request names a variable no program can be given.

    :ivar rejection: the refusal, for the channel to log under its code.
    """

    def __init__(self, rejection: RequestRejected) -> None:
        super().__init__(rejection.explanation)
        self.rejection = rejection


class ProgramStartFailed(RequestRefused):
    """The backend could not start the program; ``user_message`` is for the client's stderr."""

    def __init__(self, reason: str, user_message: bytes) -> None:
        super().__init__(reason)
        self.user_message = user_message


class EnvLimitReached(RequestRefused):
    """An ``env`` request beyond ``ssh.maxEnvVariables`` or ``ssh.maxEnvSize`` for its channel."""


#: The exit status the client gets when its program could not be started.
START_FAILED_EXIT_STATUS = 1

#: The longest terminal type a ``pty-req`` may name, in bytes. It becomes the
#: program's ``TERM``; terminfo names are a few dozen bytes at most.
MAX_TERMINAL_TYPE_BYTES = 256

#: The longest encoded terminal modes a ``pty-req`` may carry: 256 entries of
#: an opcode and a uint32 (RFC 4254, section 8) and the closing ``TTY_OP_END``.
#: RFC 4254 defines fewer than 60 opcodes and OpenSSH sends each at most
#: once, so only a client that repeats them comes near this.
MAX_TERMINAL_MODES_BYTES = 256 * 5 + 1


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

    def boolean(self) -> bool:
        if self._offset >= len(self._data):
            raise PayloadError("payload too short")
        self._offset += 1
        return self._data[self._offset - 1] != 0

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
    """``env``: the variable's name and value, if a program can be given them.

    Checked here, before any policy or backend sees the variable: a policy
    compares whole names, and a backend builds ``NAME=value``, so a name such
    as ``LD_PRELOAD=/lib/x.so:`` would pass a deny list and then set the
    very variable it names.

    :raises PayloadError: when the payload cannot be decoded.
    :raises VariableRefused: when the name is not a portable name or the
        value holds a NUL (see :mod:`conch_container.envnames`).
    """
    reader = PayloadReader(data)
    name, value = reader.text(), reader.text()
    why = variable_problem(name, value)
    if why is not None:
        raise VariableRefused(env_rejection(name, why))
    return name, value


def parse_pty_req(data: bytes) -> tuple[str, int, int, int, int, bytes]:
    """``pty-req``: terminal type, columns, rows, width and height in pixels, encoded modes."""
    reader = PayloadReader(data)
    term = reader.text()
    if value_problem(term) is not None:
        # The terminal type becomes the program's TERM.
        raise PayloadError("terminal type contains a NUL character")
    if len(term.encode("utf-8")) > MAX_TERMINAL_TYPE_BYTES:
        raise PayloadError(f"terminal type longer than {MAX_TERMINAL_TYPE_BYTES} bytes")
    columns, rows, width, height = (reader.uint32() for _ in range(4))
    modes = reader.string()
    if len(modes) > MAX_TERMINAL_MODES_BYTES:
        raise PayloadError(f"terminal modes longer than {MAX_TERMINAL_MODES_BYTES} bytes")
    return term, columns, rows, width, height, modes


class EnvBudget:
    """How many ``env`` requests, and how many bytes of them, one channel still accepts.

    Every ``env`` request is charged, whether or not its variable is then
    set: a variable a policy refuses still costs a log line and a backend
    call. The size is that of the request payload (names, values and their
    length fields), known before anything is decoded.

    :param max_variables: ``env`` requests the channel accepts.
    :param max_bytes: bytes of payload those requests may carry together.
    """

    def __init__(self, max_variables: int, max_bytes: int) -> None:
        self.max_variables = max_variables
        self.max_bytes = max_bytes
        self.variables = 0
        self.size = 0

    def charge(self, payload: bytes) -> None:
        """Count one ``env`` request.

        :raises EnvLimitReached: when the request is beyond either limit
            (it is then not counted).
        """
        if self.variables >= self.max_variables:
            raise EnvLimitReached(
                f"more than {self.max_variables} environment variables on the channel"
            )
        if self.size + len(payload) > self.max_bytes:
            raise EnvLimitReached(
                f"environment variables larger than {self.max_bytes} bytes together"
            )
        self.variables += 1
        self.size += len(payload)


def parse_window_change(data: bytes) -> tuple[int, int, int, int]:
    """``window-change``: columns, rows, width and height in pixels."""
    reader = PayloadReader(data)
    columns, rows, width, height = (reader.uint32() for _ in range(4))
    return columns, rows, width, height


def encode_modes(modes: list[tuple[int, int]]) -> bytes:
    """Encode terminal modes as they travel in ``pty-req`` (ending with ``TTY_OP_END``)."""
    return b"".join(struct.pack(">BL", opcode, value) for opcode, value in modes) + b"\x00"


#: The largest exit code an ``exit-status`` request carries (a uint32).
MAX_EXIT_STATUS = 2**32 - 1


def exit_request(status: ExitStatus) -> tuple[bytes, bytes]:
    """The ``exit-status`` or ``exit-signal`` request (type and payload) for a status.

    A backend reads its program's exit code and maps what an SSH client
    cannot be told (see the Docker backend's ``poll_exit_code``); a code
    outside 0 to :data:`MAX_EXIT_STATUS` here is a bug in that backend.

    :raises ValueError: for such a code, saying so.
    """
    if status.signal is not None:
        name = status.signal.removeprefix("SIG")
        return b"exit-signal", (
            NS(name.encode("ascii", "replace"))
            + (b"\x01" if status.core_dumped else b"\x00")
            + NS(status.message.encode("utf-8"))
            + NS(b"")
        )
    assert status.code is not None
    if not 0 <= status.code <= MAX_EXIT_STATUS:
        raise ValueError(
            f"exit code {status.code} is outside the 0 to {MAX_EXIT_STATUS} "
            "an SSH exit-status carries; the backend should have mapped it"
        )
    return b"exit-status", struct.pack(">L", status.code)
