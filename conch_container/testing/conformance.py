"""The backend conformance suite: what every container backend must do.

ContainerSSH runs the same acceptance cases against each of its backends
(``conformanceTestSuite.go``); this is that suite at the level of
:class:`~conch_container.interfaces.IBackendConnection` and
:class:`~conch_container.interfaces.IBackendSession`, plus the lifecycle
cases the SSH server relies on. Mix :class:`BackendConformanceMixin` into a
:class:`twisted.trial.unittest.TestCase` and provide:

- :meth:`~BackendConformanceMixin.make_backend`: the backend under test;
- :meth:`~BackendConformanceMixin.make_context`: a
  :class:`~conch_container.interfaces.ConnectionContext` for a new connection;
- optionally :meth:`~BackendConformanceMixin.settle`, which waits for a
  Deferred: the default just returns it (a backend on the real reactor); an
  in-memory backend on a fake clock advances its clock there instead;
- optionally :meth:`~BackendConformanceMixin.leftovers`, which lists what a
  closed connection left behind in the backend (the default asks the backend
  for ``live_containers``, as :class:`~conch_container.testing.backend.FakeBackend`
  has).

Every wait is a Deferred fired by an event (the program's exit, output
matching a pattern), never polling; the test case's timeout bounds them on
the real reactor.

The expected output assumes a POSIX shell in the backend (``sh``, ``tput``,
``cat``), as in ContainerSSH's suite.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from zope.interface import implementer

from conch_container.deferreds import as_deferred
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ISessionIO, ProgramRequest, PtyRequest

#: How many times the shell test asks for the terminal's size before it gives up.
SIZE_ATTEMPTS = 50
#: The shell test's answer to its size question: columns, lines.
SIZE_ANSWER = re.compile(rb"size-begin\r\n(\d+)\r\n(\d+)\r\nsize-end\r\n")


@implementer(ISessionIO)
class CollectingIO:
    """An :class:`ISessionIO` that collects everything and fires Deferreds on events.

    :ivar stdout_data: everything written to stdout.
    :ivar stderr_data: everything written to stderr.
    :ivar output_was_closed: whether :meth:`output_closed` was called.
    :ivar status: the :class:`ExitStatus`, once the program ended.
    :ivar events: the order of calls (``stdout``, ``stderr``, ``output_closed``, ``exited``).
    """

    def __init__(self) -> None:
        self.stdout_data = bytearray()
        self.stderr_data = bytearray()
        self.output_was_closed = False
        self.status: ExitStatus | None = None
        self.events: list[str] = []
        self.producer: Any = None
        self._exited: list[Deferred[ExitStatus]] = []
        self._watchers: list[tuple[bytes, int, Deferred[bytes]]] = []

    def stdout(self, data: bytes) -> None:
        """Collect stdout; fire the watchers whose pattern appeared."""
        self._note("stdout")
        self.stdout_data += data
        self._check()

    def stderr(self, data: bytes) -> None:
        """Collect stderr."""
        self._note("stderr")
        self.stderr_data += data

    def output_closed(self) -> None:
        """Note the EOF."""
        self._note("output_closed")
        self.output_was_closed = True

    def exited(self, status: ExitStatus) -> None:
        """Record the status and fire :meth:`wait_exit` waiters."""
        self._note("exited")
        self.status = status
        waiting, self._exited = self._exited, []
        for d in waiting:
            d.callback(status)
        watchers, self._watchers = self._watchers, []
        for pattern, _, watcher in watchers:
            watcher.errback(AssertionError(f"program exited before printing {pattern!r}"))

    def register_producer(self, producer: Any) -> None:
        """Remember the producer (this consumer never pauses it)."""
        self.producer = producer

    def unregister_producer(self) -> None:
        """Forget the producer."""
        self.producer = None

    def _note(self, event: str) -> None:
        if not self.events or self.events[-1] != event:
            self.events.append(event)

    def mark(self) -> int:
        """The current length of stdout, for :meth:`wait_for`."""
        return len(self.stdout_data)

    def wait_exit(self) -> Deferred[ExitStatus]:
        """Fires with the :class:`ExitStatus` when the program ends (at once if it did)."""
        if self.status is not None:
            return succeed(self.status)
        d: Deferred[ExitStatus] = Deferred()
        self._exited.append(d)
        return d

    def wait_for(self, pattern: bytes, since: int = 0) -> Deferred[bytes]:
        """Fires when ``pattern`` appears in stdout after offset ``since``."""
        d: Deferred[bytes] = Deferred()
        self._watchers.append((pattern, since, d))
        self._check()
        return d

    def _check(self) -> None:
        # Settle the list before firing: a callback may resume the test
        # synchronously and register (and check) new watchers.
        fired = [w for w in self._watchers if self.stdout_data.find(w[0], w[1]) >= 0]
        self._watchers = [w for w in self._watchers if w not in fired]
        for _, since, d in fired:
            d.callback(bytes(self.stdout_data[since:]))


class CountingProducer:
    """A stdin producer that counts what the backend asks of it."""

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0
        self.stopped = False

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1

    def stopProducing(self) -> None:
        self.stopped = True


class BackendConformanceMixin:
    """Conformance cases for a container backend; see the module docstring."""

    # What the concrete test case provides.

    def make_backend(self) -> Any:
        """The backend under test (a new one per test)."""
        raise NotImplementedError

    def make_context(self) -> Any:
        """A :class:`ConnectionContext` for a new connection."""
        raise NotImplementedError

    def settle(self, d: Deferred[Any]) -> Deferred[Any]:
        """Wait for ``d``; an in-memory backend drives its clock here."""
        return d

    async def leftovers(self, backend: Any, context: Any) -> list[str]:
        """What a closed connection left in the backend; must be empty."""
        return list(backend.live_containers)

    # Helpers. Prefixed: trial's TestCase has private methods called _run and _wait.

    async def _cf_wait(self, value: Any) -> Any:
        return await self.settle(as_deferred(value))

    async def _cf_connect(self) -> tuple[Any, Any, Any]:
        backend = self.make_backend()
        context = self.make_context()
        connection = await self._cf_wait(backend.connect(context))
        self.addCleanup(self._cf_close, connection)  # type: ignore[attr-defined]
        return backend, context, connection

    async def _cf_close(self, connection: Any) -> None:
        await self._cf_wait(connection.close())

    async def _cf_run(
        self, command: str, env: dict[str, str] | None = None
    ) -> tuple[CollectingIO, ExitStatus]:
        _, _, connection = await self._cf_connect()
        session = connection.open_session(0)
        for name, value in (env or {}).items():
            session.set_env(name, value)
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("exec", command), io))
        status = await self._cf_wait(io.wait_exit())
        await self._cf_wait(session.close())
        return io, status

    # ContainerSSH's conformance cases 1-4.

    async def test_single_program_runs(self) -> None:
        """``echo "Hello world!"`` prints ``Hello world!`` and exits 0."""
        io, status = await self._cf_run('echo "Hello world!"')
        self.assertEqual(bytes(io.stdout_data), b"Hello world!\n")  # type: ignore[attr-defined]
        self.assertEqual(status, ExitStatus(code=0))  # type: ignore[attr-defined]
        self.assertTrue(io.output_was_closed)  # type: ignore[attr-defined]

    async def test_environment_variables_are_set(self) -> None:
        """A variable set with ``set_env`` is in the program's environment."""
        io, status = await self._cf_run('echo "$FOO"', env={"FOO": "Hello world!"})
        self.assertEqual(bytes(io.stdout_data), b"Hello world!\n")  # type: ignore[attr-defined]
        self.assertEqual(status, ExitStatus(code=0))  # type: ignore[attr-defined]

    async def test_interactive_shell_with_terminal(self) -> None:
        """A shell on an 80x25 xterm sees its size, follows a resize, runs commands, exits 0.

        A terminal's size travels apart from its input (SSH's window-change,
        Kubernetes' resize channel), so a resize may land a moment after the
        next line typed: the size is asked again until it shows (bounded).
        """
        _, _, connection = await self._cf_connect()
        session = connection.open_session(0)
        session.set_env("foo", "bar")
        session.set_pty(PtyRequest("xterm", 80, 25))
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("shell"), io))

        async def run(line: bytes, expect: bytes) -> None:
            since = io.mark()
            session.write(line)
            await self._cf_wait(io.wait_for(expect, since))

        async def size_becomes(columns: int, lines: int) -> None:
            # Quoted in the line typed, so that its echo never matches the output.
            ask = b'echo size-"begin"; tput cols; tput lines; echo size-"end"\n'
            answer: tuple[bytes, ...] = ()
            for _ in range(SIZE_ATTEMPTS):
                since = io.mark()
                session.write(ask)
                await self._cf_wait(io.wait_for(b"size-end\r\n", since))
                found = SIZE_ANSWER.findall(bytes(io.stdout_data[since:]))
                answer = found[-1] if found else ()
                if answer == (b"%d" % columns, b"%d" % lines):
                    return
            self.fail(f"the terminal is {answer!r}, not {columns}x{lines}")  # type: ignore[attr-defined]

        await size_becomes(80, 25)
        await self._cf_wait(session.resize(120, 25, 0, 0))
        await size_becomes(120, 25)
        await run(b'echo "Hello world!"\n', b"Hello world!\r\n")
        session.write(b"exit\n")
        status = await self._cf_wait(io.wait_exit())
        self.assertEqual(status, ExitStatus(code=0))  # type: ignore[attr-defined]
        await self._cf_wait(session.close())

    async def test_exit_code_is_reported(self) -> None:
        """``exit 42`` ends the program with status 42."""
        _, status = await self._cf_run("exit 42")
        self.assertEqual(status, ExitStatus(code=42))  # type: ignore[attr-defined]

    # What the SSH server relies on besides.

    async def test_unknown_command(self) -> None:
        """An unknown command exits 127 and says so on stderr."""
        io, status = await self._cf_run("no-such-command-here")
        self.assertEqual(status, ExitStatus(code=127))  # type: ignore[attr-defined]
        self.assertIn(b"not found", bytes(io.stderr_data))  # type: ignore[attr-defined]

    async def test_stdin_streams_until_closed(self) -> None:
        """``cat`` copies stdin to stdout and exits 0 once stdin is closed."""
        _, _, connection = await self._cf_connect()
        session = connection.open_session(0)
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("exec", "cat"), io))
        chunks = [b"first line\n", b"second ", b"line\n", bytes(range(256)) * 64]
        for chunk in chunks:
            session.write(chunk)
        await self._cf_wait(io.wait_for(b"second line\n"))
        session.close_stdin()
        status = await self._cf_wait(io.wait_exit())
        self.assertEqual(status, ExitStatus(code=0))  # type: ignore[attr-defined]
        self.assertEqual(bytes(io.stdout_data), b"".join(chunks))  # type: ignore[attr-defined]
        self.assertTrue(io.output_was_closed)  # type: ignore[attr-defined]
        await self._cf_wait(session.close())

    async def test_stdin_in_bulk_with_an_input_producer(self) -> None:
        """With a stdin producer registered (as the SSH layer does), bulk stdin and EOF arrive.

        The backend may pause the producer while it holds stdin, and stops
        it once stdin is closed; EOF must reach the program either way.
        """
        _, _, connection = await self._cf_connect()
        session = connection.open_session(0)
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("exec", "cat"), io))
        producer = CountingProducer()
        session.register_input_producer(producer)
        size = 1 << 20
        session.write(b"s" * size)
        session.close_stdin()
        status = await self._cf_wait(io.wait_exit())
        self.assertEqual(status, ExitStatus(code=0))  # type: ignore[attr-defined]
        self.assertEqual(bytes(io.stdout_data), b"s" * size)  # type: ignore[attr-defined]
        await self._cf_wait(session.close())
        self.assertTrue(producer.stopped)  # type: ignore[attr-defined]

    async def test_second_start_is_refused(self) -> None:
        """A session runs one program: a second ``start`` fails with a ContainerSSHError."""
        _, _, connection = await self._cf_connect()
        session = connection.open_session(0)
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("exec", "cat"), io))
        second = maybeDeferred(session.start, ProgramRequest("exec", "true"), CollectingIO())
        failure = None
        try:
            await self._cf_wait(second)
        except ContainerSSHError as e:
            failure = e
        self.assertIsNotNone(failure, "second start was accepted")  # type: ignore[attr-defined]
        session.close_stdin()
        await self._cf_wait(io.wait_exit())
        await self._cf_wait(session.close())

    async def test_close_leaves_nothing_behind(self) -> None:
        """Closing a connection with a running program removes everything it created."""
        backend = self.make_backend()
        context = self.make_context()
        connection = await self._cf_wait(backend.connect(context))
        session = connection.open_session(0)
        io = CollectingIO()
        await self._cf_wait(session.start(ProgramRequest("exec", "cat"), io))
        await self._cf_wait(connection.close())
        await self._cf_wait(connection.close())  # idempotent
        self.assertEqual(await self.leftovers(backend, context), [])  # type: ignore[attr-defined]
