"""The guest agent's PID handshake, which does not depend on the container engine.

The gateway starts a program as ``agent console --pid -- ...``; the agent
first writes its PID (which the program inherits through ``execve``) as a
4-byte little-endian integer on stdout, then runs the program. A backend
reads those four bytes from the front of the program's output with
:class:`PidReader`, or with :class:`TerminalPidReader` when the output comes
through a terminal, whose output processing turns each ``0x0A`` byte of the
PID into ``0x0D 0x0A`` (``onlcr``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Sink = Callable[[bytes], Any]

PID_SIZE = 4
#: Linux's ``PID_MAX_LIMIT`` on 64-bit systems; a larger "PID" is not one.
PID_MAX = 1 << 22


class PidReader:
    """Collects the agent's 4-byte PID from the front of a byte stream.

    :param on_pid: called with the PID once four bytes arrived.
    :param forward: called with the bytes following the PID.
    """

    def __init__(self, on_pid: Callable[[int], Any], forward: Sink) -> None:
        self._buffer = bytearray()
        self._on_pid = on_pid
        self._forward = forward

    def feed(self, data: bytes) -> None:
        need = PID_SIZE - len(self._buffer)
        self._buffer += data[:need]
        if len(self._buffer) < PID_SIZE:
            return
        self._on_pid(int.from_bytes(self._buffer, "little"))
        rest = data[need:]
        if rest:
            self._forward(rest)


class TerminalPidReader(PidReader):
    """A :class:`PidReader` for a terminal's output.

    A new terminal translates ``0x0A`` to ``0x0D 0x0A`` (``onlcr``, on by
    default) before the program can change its settings, and translates
    nothing else. So ``0x0D 0x0A`` stands for one ``0x0A`` of the PID, and a
    ``0x0D`` followed by anything else is a ``0x0D``. Only a ``0x0D`` as the
    PID's last byte, followed by raw output starting with ``0x0A``, would be
    misread, and that byte is 0 for every possible PID.
    """

    def __init__(self, on_pid: Callable[[int], Any], forward: Sink) -> None:
        super().__init__(on_pid, forward)
        self._carriage_return = False

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        pos = 0
        end = len(data)
        while len(buffer) < PID_SIZE and pos < end:
            byte = data[pos]
            if self._carriage_return:
                self._carriage_return = False
                if byte == 0x0A:
                    buffer.append(0x0A)
                    pos += 1
                else:
                    buffer.append(0x0D)  # ``byte`` is looked at again
                continue
            pos += 1
            if byte == 0x0D:
                self._carriage_return = True
            else:
                buffer.append(byte)
        if len(buffer) < PID_SIZE:
            return
        self._on_pid(int.from_bytes(buffer, "little"))
        rest = data[pos:]
        if rest:
            self._forward(rest)


def plausible_pid(pid: int) -> bool:
    """Whether four bytes read as a PID can be one (an engine error text is not)."""
    return 0 < pid <= PID_MAX
