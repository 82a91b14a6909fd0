"""A very small shell for :class:`~conch_container.testing.backend.FakeBackend`.

It understands just enough of ``sh`` for the conformance cases and the SSH
server's tests: command lines as :mod:`~conch_container.testing.shellwords`
splits them, and the commands ``echo``, ``exit``, ``printenv``, ``env``,
``export``, ``tput cols|lines``, ``cat``, ``head -c N [/dev/zero]``,
``sleep N``, ``true``, ``false`` and ``sh [-c CMD]``. Anything else is "not
found" (exit status 127), as in a real shell.

Everything runs on the clock it is given: ``sleep`` waits on it, output waits
while the consumer is paused, and reading stdin waits for data, so tests stay
deterministic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from conch_container.testing.shellwords import ShellSyntaxError, expand, parse

#: Exit status of a command interrupted with Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


class ExitShell(Exception):
    """``exit`` was run: the shell ends with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Pipe:
    """Stdin of the fake program: bytes in, reads that wait for them."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._waiter: Deferred[None] | None = None

    @property
    def at_eof(self) -> bool:
        """True when closed and fully read."""
        return self._eof and not self._buffer

    def feed(self, data: bytes) -> None:
        """Data arrived."""
        if self._eof:
            return
        self._buffer += data
        self._wake()

    def close(self) -> None:
        """No more data will arrive."""
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    async def _wait(self) -> None:
        waiter: Deferred[None] = Deferred()
        self._waiter = waiter
        try:
            await waiter
        finally:
            # A cancelled reader must not leave a fired Deferred behind.
            if self._waiter is waiter:
                self._waiter = None

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes; ``b""`` at end of input."""
        while not self._buffer and not self._eof:
            await self._wait()
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def readline(self) -> bytes | None:
        """One line including its newline, the rest at end of input, or None after it."""
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                line = bytes(self._buffer[: index + 1])
                del self._buffer[: index + 1]
                return line
            if self._eof:
                if self._buffer:
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line
                return None
            await self._wait()


class Terminal(Protocol):
    """What the shell needs from the session it runs in."""

    env: dict[str, str]
    stdin: Pipe

    @property
    def tty(self) -> bool: ...

    async def out(self, data: bytes) -> None: ...

    async def err(self, data: bytes) -> None: ...

    def size(self) -> tuple[int, int] | None: ...


class Shell:
    """Runs command lines against a :class:`Terminal`.

    :param terminal: where input comes from and output goes to.
    :param clock: the clock ``sleep`` waits on.
    """

    def __init__(self, terminal: Terminal, clock: IReactorTime) -> None:
        self._t = terminal
        self._clock = clock
        self._foreground: Deferred[int] | None = None
        self._interrupting = False
        self.status = 0
        self._builtins: dict[str, Callable[[list[str]], Awaitable[int]]] = {
            "echo": self._echo,
            "exit": self._exit,
            "printenv": self._printenv,
            "env": self._env,
            "export": self._export,
            "tput": self._tput,
            "cat": self._cat,
            "head": self._head,
            "sleep": self._sleep,
            "true": self._true,
            "false": self._false,
            "sh": self._sh,
        }

    async def run_line(self, line: str) -> int:
        """Run one command line; returns its status. ``exit`` raises :class:`ExitShell`."""
        try:
            commands = parse(line)
        except ShellSyntaxError as e:
            await self._t.err(f"sh: {e}\n".encode())
            self.status = 2
            return self.status
        for connector, words in commands:
            if connector == "&&" and self.status != 0:
                continue
            if connector == "||" and self.status == 0:
                continue
            argv: list[str] = []
            for word in words:
                argv.extend(expand(word, self._t.env, self.status))
            if argv:
                self.status = await self._run_foreground(argv)
        return self.status

    def interrupt(self) -> bool:
        """Ctrl-C: stop the running command (its status is 130); False when idle."""
        if self._foreground is None:
            return False
        self._interrupting = True
        self._foreground.cancel()
        return True

    async def _run_foreground(self, argv: list[str]) -> int:
        outer, d = self._foreground, Deferred.fromCoroutine(self._run(argv))
        self._foreground = d
        try:
            return await d
        except CancelledError:
            # Cancelled by interrupt(): only this command ends. Cancelled
            # from outside (the program is being killed): everything ends.
            if not self._interrupting:
                raise
            self._interrupting = False
            return INTERRUPTED
        finally:
            self._foreground = outer

    async def _run(self, argv: list[str]) -> int:
        command = self._builtins.get(argv[0])
        if command is None:
            await self._t.err(f"sh: {argv[0]}: not found\n".encode())
            return 127
        return await command(argv[1:])

    async def interactive(self) -> int:
        """Read and run lines from stdin until ``exit`` or end of input."""
        while True:
            if self._t.tty:
                await self._t.out(b"$ ")
            line = await self._t.stdin.readline()
            if line is None:
                return self.status
            await self.run_line(line.decode("utf-8", "replace"))

    # The commands.

    async def _echo(self, args: list[str]) -> int:
        newline = True
        if args[:1] == ["-n"]:
            newline, args = False, args[1:]
        await self._t.out((" ".join(args) + ("\n" if newline else "")).encode())
        return 0

    async def _exit(self, args: list[str]) -> int:
        try:
            status = int(args[0]) if args else self.status
        except ValueError:
            await self._t.err(f"sh: exit: illegal number: {args[0]}\n".encode())
            status = 2
        raise ExitShell(status & 0xFF)

    async def _printenv(self, args: list[str]) -> int:
        if not args:
            return await self._env([])
        values = [self._t.env[name] for name in args if name in self._t.env]
        for value in values:
            await self._t.out(value.encode() + b"\n")
        return 0 if len(values) == len(args) else 1

    async def _env(self, args: list[str]) -> int:
        for name in sorted(self._t.env):
            await self._t.out(f"{name}={self._t.env[name]}\n".encode())
        return 0

    async def _export(self, args: list[str]) -> int:
        for arg in args:
            name, sep, value = arg.partition("=")
            if sep:
                self._t.env[name] = value
        return 0

    async def _tput(self, args: list[str]) -> int:
        size = self._t.size() or (80, 24)
        if args == ["cols"]:
            await self._t.out(f"{size[0]}\n".encode())
        elif args == ["lines"]:
            await self._t.out(f"{size[1]}\n".encode())
        else:
            await self._t.err(b"tput: unsupported capability\n")
            return 1
        return 0

    async def _cat(self, args: list[str]) -> int:
        if args and args != ["-"]:
            await self._t.err(f"cat: can't open '{args[0]}': No such file or directory\n".encode())
            return 1
        while True:
            data = await self._t.stdin.read()
            if not data:
                return 0
            await self._t.out(data)

    async def _head(self, args: list[str]) -> int:
        if len(args) not in (2, 3) or args[0] != "-c" or not args[1].isdigit():
            await self._t.err(b"head: usage: head -c N [/dev/zero]\n")
            return 1
        remaining = int(args[1])
        zero = args[2:] == ["/dev/zero"]
        if args[2:] and not zero:
            await self._t.err(f"head: {args[2]}: No such file or directory\n".encode())
            return 1
        chunk = bytes(32768)
        while remaining > 0:
            if zero:
                data = chunk[: min(remaining, len(chunk))]
            else:
                data = await self._t.stdin.read(min(remaining, 65536))
                if not data:
                    break
            remaining -= len(data)
            await self._t.out(data)
        return 0

    async def _sleep(self, args: list[str]) -> int:
        try:
            seconds = float(args[0]) if args else -1.0
        except ValueError:
            seconds = -1.0
        if seconds < 0:
            await self._t.err(b"sleep: invalid number\n")
            return 1
        await deferLater(self._clock, seconds)
        return 0

    async def _true(self, args: list[str]) -> int:
        return 0

    async def _false(self, args: list[str]) -> int:
        return 1

    async def _sh(self, args: list[str]) -> int:
        if args[:1] == ["-c"] and len(args) >= 2:
            try:
                return await self.run_line(args[1])
            except ExitShell as e:
                return e.status
        try:
            return await self.interactive()
        except ExitShell as e:
            return e.status


__all__ = ["INTERRUPTED", "ExitShell", "Pipe", "Shell", "Terminal"]
