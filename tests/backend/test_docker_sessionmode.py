"""The Docker backend in ``session`` mode against the real engine (skipped without one).

Each session channel is a container of its own that runs the program. Every
test runs with its own gateway instance id and checks afterwards that no
container carrying it is left behind; several check it during the test too.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.threads import deferToThread
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.backend.docker.containerconfig import (
    LABEL_CONNECTION_ID,
    LABEL_INSTANCE,
    LABEL_IP,
    LABEL_USERNAME,
)
from conch_container.backend.docker.sessionmode.session import DockerContainerSession
from conch_container.config import AppConfig
from conch_container.errors import ContainerSSHError, RequestRejected
from conch_container.interfaces import (
    ExitStatus,
    IBackendConnection,
    IBackendSession,
    ProgramRequest,
    PtyRequest,
)
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    DockerBackendTestCase,
    make_config,
    reactor,
)


class SessionModeIntegrationTests(DockerBackendTestCase):
    log_namespace = "tests.backend.docker.sessionmode"

    async def until_no_containers(self) -> None:
        """Wait until this instance has no container (the removal after an exit runs alone)."""
        await _until(lambda: None, check=self.containers)

    def config(self, *args: Any, **kwargs: Any) -> AppConfig:
        return make_config(*args, mode="session", **kwargs)

    # -- programs

    async def test_interfaces(self) -> None:
        """The connection and its sessions provide their interfaces."""
        connection = await self.connect()
        verifyObject(IBackendConnection, connection)
        session = self.open(connection)
        self.assertIsInstance(session, DockerContainerSession)
        verifyObject(IBackendSession, session)

    async def test_no_container_at_connect(self) -> None:
        """Connecting creates no container; the guest agent is not mentioned."""
        await self.connect()
        self.assertEqual(await self.containers(), [])
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())
        self.assertNotIn("DOCKER_GUEST_AGENT_DISABLED", self.codes())

    async def test_echo(self) -> None:
        """The program runs as its container; output, EOF and exit status reach the channel."""
        io = await self.run_program('echo "Hello world!"')
        self.assertEqual((io.stdout_data, io.stderr_data), (b"Hello world!\n", b""))
        self.assertEqual(io.status, ExitStatus(code=0))
        self.assertEqual(
            io.events, ["register_producer", "unregister_producer", "output_closed", "exited"]
        )
        codes = self.codes()
        for code in (
            "DOCKER_CONTAINER_CREATE",
            "DOCKER_CONTAINER_ATTACH",
            "DOCKER_CONTAINER_START",
            "DOCKER_EXIT_CODE",
            "DOCKER_CONTAINER_REMOVE_SUCCESSFUL",
        ):
            self.assertIn(code, codes)
        self.assertLess(
            codes.index("DOCKER_CONTAINER_ATTACH"), codes.index("DOCKER_CONTAINER_START")
        )
        self.assertNotIn("DOCKER_EXEC", codes)
        self.assertEqual(await self.containers(), [])

    async def test_removed_after_exit(self) -> None:
        """The container goes when the program ends, before the channel closes."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "exit 5"), io)
        self.assertEqual(await io.when_exited(), ExitStatus(code=5))
        await self.until_no_containers()

    async def test_env(self) -> None:
        """Authentication environment and metadata, channel variables and TERM reach the program."""
        connection = await self.connect(
            environment={"AUTH_VAR": "from-auth", "SHARED": "auth"},
            metadata={"META_VAR": "from-meta"},
            exposeAuthMetadataAsEnv=True,
        )
        session = self.open(connection)
        session.set_env("FOO", "Hello world!")
        session.set_env("SHARED", "channel")
        io = RecordingSessionIO()
        await session.start(
            ProgramRequest("exec", 'echo "$AUTH_VAR|$META_VAR|$FOO|$SHARED|${TERM-unset}"'), io
        )
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"from-auth|from-meta|Hello world!|channel|unset\n")

    async def test_exit_code(self) -> None:
        """The program's exit code is the container's."""
        io = await self.run_program("exit 42")
        self.assertEqual(io.status, ExitStatus(code=42))

    async def test_stderr_separate(self) -> None:
        """Without a terminal stdout and stderr stay apart."""
        io = await self.run_program("echo out; echo err >&2; echo out2")
        self.assertEqual((io.stdout_data, io.stderr_data), (b"out\nout2\n", b"err\n"))

    async def test_stdin_counted_then_eof(self) -> None:
        """A million bytes of stdin reach the program; EOF closes its stdin, output still flows."""
        io = await self.run_program("wc -c; echo done >&2", stdin=b"x" * 1_000_000)
        self.assertEqual((io.stdout_data.strip(), io.stderr_data), (b"1000000", b"done\n"))
        self.assertEqual(io.status, ExitStatus(code=0))

    async def test_stdin_round_trip(self) -> None:
        """Binary data written to cat comes back unchanged."""
        data = bytes(range(256)) * 4096
        io = await self.run_program("cat", stdin=data)
        self.assertEqual(io.stdout_data, data)

    async def test_output_after_stdin_eof(self) -> None:
        """After the half-close the program keeps running and its later output arrives."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "cat; sleep 0.3; echo later; exit 3"), io)
        session.write(b"early\n")
        await io.when_stdout_contains(b"early\n")
        session.close_stdin()
        self.assertEqual(await io.when_exited(), ExitStatus(code=3))
        self.assertEqual(io.stdout_data, b"early\nlater\n")

    async def test_tty_and_resize(self) -> None:
        """With a pty the shell sees the requested size and TERM; a resize changes the size."""
        connection = await self.connect()
        session = self.open(connection)
        session.set_env("foo", "bar")
        session.set_pty(PtyRequest("xterm", columns=80, rows=25))
        io = RecordingSessionIO()
        await session.start(ProgramRequest("shell"), io)
        session.write(b"tput cols; tput lines; echo $TERM-$foo\n")
        await io.when_stdout_contains(b"xterm-bar")
        self.assertIn(b"80\r\n25\r\n", io.stdout_data)
        await session.resize(120, 40, 0, 0)
        session.write(b"tput cols; stty size\n")
        await io.when_stdout_contains(b"40 120")
        self.assertIn(b"120\r\n", io.stdout_data)
        # EOF from the client is ignored with a terminal: the shell keeps running.
        session.close_stdin()
        session.write(b"exit 3\n")
        self.assertEqual(await io.when_exited(), ExitStatus(code=3))
        self.assertEqual(io.stderr_data, b"")
        self.assertIn("DOCKER_EXEC_RESIZE", self.codes())

    async def test_output_never_lost(self) -> None:
        """A program that prints and exits at once: all of its output arrives, 20 times in a row."""
        connection = await self.connect()
        for i in range(20):
            io = await self.run_program(f"/bin/echo run-{i}", connection=connection)
            self.assertEqual(
                (io.stdout_data, io.status), (f"run-{i}\n".encode(), ExitStatus(code=0))
            )
        await self.until_no_containers()

    async def test_terminal_output_never_lost(self) -> None:
        """The same with a terminal: the output of an instant program arrives, 20 times."""
        connection = await self.connect()
        for i in range(20):
            session = self.open(connection, i)
            session.set_pty(PtyRequest("xterm", columns=80, rows=25))
            io = RecordingSessionIO()
            await session.start(ProgramRequest("exec", f"/bin/echo tty-{i}"), io)
            status = await io.when_exited()
            self.assertEqual(
                (io.stdout_data, status), (f"tty-{i}\r\n".encode(), ExitStatus(code=0))
            )
            await session.close()
        await self.until_no_containers()

    async def test_subsystem(self) -> None:
        """A subsystem runs its binary: sftp-server answers an SFTP init with its version."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("subsystem", "sftp"), io)
        session.write(b"\x00\x00\x00\x05\x01\x00\x00\x00\x03")  # SSH_FXP_INIT, version 3
        out = await io.when_stdout_contains(b"\x02")
        self.assertEqual(out[4], 2)  # SSH_FXP_VERSION
        session.close_stdin()
        await io.when_exited()

    async def test_container_settings(self) -> None:
        """The container has the labels, the program, stdin attached once, an init process."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "/bin/cat"), io)
        info = await deferToThread(self.client.inspect_container, session.container_id)
        labels = info["Config"]["Labels"]
        self.assertEqual(labels[LABEL_INSTANCE], self.instance_id)
        self.assertEqual(labels[LABEL_IP], "127.0.0.1")
        self.assertEqual(labels[LABEL_USERNAME], "alice")
        self.assertEqual(len(labels[LABEL_CONNECTION_ID]), 32)
        config = info["Config"]
        self.assertEqual(config["Cmd"], ["/bin/cat"])
        self.assertTrue(config["OpenStdin"] and config["StdinOnce"] and config["AttachStdin"])
        self.assertFalse(config["Tty"])
        self.assertTrue(info["HostConfig"]["Init"])
        self.assertFalse(info["HostConfig"]["AutoRemove"])
        session.close_stdin()
        await io.when_exited()

    # -- signals

    async def test_signal_term(self) -> None:
        """TERM through the kill API ends ``sleep``; the client hears of the signal."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "sleep 100"), io)
        await session.signal("TERM")
        self.assertEqual(await io.when_exited(), ExitStatus(signal="TERM"))
        self.assertIn("DOCKER_CONTAINER_SIGNAL", self.codes())
        self.assertNotIn("DOCKER_EXEC_SIGNAL", self.codes())

    async def test_signal_handled(self) -> None:
        """A program that handles a signal sees it (ContainerSSH's conformance case 5)."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(
            ProgramRequest(
                "exec",
                "trap 'echo USR1 received; exit 0' USR1; echo ready; "
                "while :; do sleep 1 & wait $!; done",
            ),
            io,
        )
        await io.when_stdout_contains(b"ready\n")
        await session.signal("USR1")
        self.assertEqual(await io.when_exited(), ExitStatus(code=0))
        self.assertEqual(io.stdout_data, b"ready\nUSR1 received\n")

    async def test_exit_143_without_signal(self) -> None:
        """An exit code of 128+N is a code, not a signal, when the gateway sent no signal."""
        io = await self.run_program("exit 143")
        self.assertEqual(io.status, ExitStatus(code=143))

    async def test_signal_unsupported(self) -> None:
        """A signal ContainerSSH does not know is refused with DOCKER_CONTAINER_SIGNAL_FAILED."""
        connection = await self.connect()
        session = self.open(connection)
        await session.start(ProgramRequest("exec", "sleep 100"), RecordingSessionIO())
        with self.assertRaises(ContainerSSHError) as caught:
            await session.signal("WINCH")
        self.assertEqual(caught.exception.code, messages.DOCKER_CONTAINER_SIGNAL_FAILED)

    async def test_not_running(self) -> None:
        """Resize and signal without a running program fail with DOCKER_PROGRAM_NOT_RUNNING."""
        connection = await self.connect()
        session = self.open(connection)
        for call in (lambda: session.resize(80, 25, 0, 0), lambda: session.signal("TERM")):
            with self.assertRaises(ContainerSSHError) as caught:
                await call()
            self.assertEqual(caught.exception.code, messages.DOCKER_PROGRAM_NOT_RUNNING)

    async def test_second_start(self) -> None:
        """A second program on one session is refused with DOCKER_PROGRAM_ALREADY_RUNNING."""
        connection = await self.connect()
        session = self.open(connection)
        await session.start(ProgramRequest("exec", "sleep 30"), RecordingSessionIO())
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", "true"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_PROGRAM_ALREADY_RUNNING)
        self.assertRaises(ContainerSSHError, session.set_env, "A", "b")
        self.assertEqual(len(await self.containers()), 1)

    # -- files

    async def test_files_before_start(self) -> None:
        """Files from authentication are in place, mode 0600, owned by the numeric user."""
        io = await self.run_program(
            "stat -c '%a %u %g %s' /home/alice/secret rel/file; cat /home/alice/secret",
            files={"/home/alice/secret": b"top secret\n", "rel/file": b"xy"},
            container={"image": GUEST, "user": "1000", "workingdir": "/work"},
        )
        self.assertEqual(
            io.stdout_data, b"600 1000 0 11\n600 1000 0 2\ntop secret\n", io.stderr_data
        )
        self.assertIn("DOCKER_FILE_WRITE", self.codes())

    async def test_files_owned_by_root_without_user(self) -> None:
        """Without a configured user the files belong to root."""
        io = await self.run_program("stat -c '%a %u %g' /tmp/f", files={"/tmp/f": b"x"})
        self.assertEqual(io.stdout_data, b"600 0 0\n")

    # -- container lifecycle

    async def test_channel_close_stops_and_removes(self) -> None:
        """Closing a channel while its program runs stops and removes the container, silently."""
        connection = await self.connect()
        session = self.open(connection)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "while :; do echo y; sleep 0.01; done"), io)
        await io.when_stdout_contains(b"y")
        await session.close()
        await session.close()
        seen = len(io.stdout_data)
        self.assertEqual(await self.containers(), [])
        await task.deferLater(reactor(), 0.1)
        self.assertEqual(len(io.stdout_data), seen)
        self.assertIsNone(io.status)
        for code in (
            "DOCKER_CONTAINER_SHUTTING_DOWN",
            "DOCKER_CONTAINER_STOP",
            "DOCKER_CONTAINER_REMOVE_SUCCESSFUL",
        ):
            self.assertIn(code, self.codes())

    async def test_tty_channel_close(self) -> None:
        """A shell on a terminal (which ignores TERM) is removed too when its channel closes."""
        connection = await self.connect()
        session = self.open(connection)
        session.set_pty(PtyRequest("xterm", columns=80, rows=25))
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "/bin/bash -i"), io)
        await session.close()
        self.assertEqual(await self.containers(), [])

    async def test_connection_close_removes_every_container(self) -> None:
        """Closing the connection removes the containers of all its sessions."""
        connection = await self.connect()
        ios = []
        for channel in range(3):
            session = connection.open_session(channel)
            io = RecordingSessionIO()
            await session.start(ProgramRequest("exec", "sleep 60"), io)
            ios.append(io)
        self.assertEqual(len(await self.containers()), 3)
        await connection.close()
        await connection.close()
        self.assertEqual(await self.containers(), [])
        self.assertEqual([io.status for io in ios], [None, None, None])
        with self.assertRaises(ContainerSSHError) as caught:
            connection.open_session(9)
        self.assertEqual(caught.exception.code, messages.DOCKER_CONTAINER_SHUTTING_DOWN)

    async def test_sessions_have_own_containers(self) -> None:
        """Two sessions of one connection run in two different containers."""
        connection = await self.connect()
        first = await self.run_program("hostname", connection=connection)
        second = await self.run_program("hostname", connection=connection)
        self.assertNotEqual(first.stdout_data, second.stdout_data)

    # -- failures leave nothing behind

    async def assert_start_fails(self, code: Any, command: str = "true", **kwargs: Any) -> None:
        connection = await self.connect(**kwargs)
        session = self.open(connection)
        io = RecordingSessionIO()
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", command), io)
        self.assertEqual(caught.exception.code, code)
        await session.close()
        self.assertEqual(await self.containers(), [])
        self.assertIsNone(io.status)

    async def test_create_fails(self) -> None:
        """A missing image (policy Never) fails the program's start with no container."""
        await self.assert_start_fails(
            messages.DOCKER_CONTAINER_CREATE_FAILED,
            container={"image": "conch-container/does-not-exist:latest"},
        )

    async def test_start_fails(self) -> None:
        """Without init, a program that cannot be executed fails the start; the container goes."""
        await self.assert_start_fails(
            messages.DOCKER_CONTAINER_START_FAILED, "/nonexistent/prog", host={"init": False}
        )
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.codes())

    async def test_missing_program_with_init(self) -> None:
        """With the init process, a program that cannot be executed exits 127 with a message."""
        io = await self.run_program("/nonexistent/prog")
        self.assertEqual(io.status, ExitStatus(code=127))
        self.assertIn(b"/nonexistent/prog", io.stderr_data)

    async def test_deadline_during_create(self) -> None:
        """A create still running at the deadline leaves no container once it returns."""
        warm = await self.connect()  # the engine client is now cached: the deadline hits the create
        await self.run_program("true", connection=warm)
        connection = await self.connect(timeouts={"containerStart": "1ms"})
        session = connection.open_session(0)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", "true"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_CONTAINER_CREATE_FAILED)
        await session.close()
        self.assertEqual(await self.containers(), [])

    async def test_unknown_subsystem(self) -> None:
        """An unconfigured subsystem is a logged rejection before any container is made.

        A :class:`RequestRejected` makes the SSH layer answer the request with
        a plain failure.
        """
        connection = await self.connect()
        session = self.open(connection)
        with self.assertRaises(RequestRejected) as caught:
            await session.start(ProgramRequest("subsystem", "nope"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED)
        self.assertIn("DOCKER_SUBSYSTEM_NOT_SUPPORTED", self.codes())
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())


GUEST = make_config().docker.execution.container["Image"]


async def _until(predicate: Any, *, check: Any = None, timeout: float = 20.0) -> None:
    """Wait until ``predicate()`` is true, or until ``await check()`` is empty."""
    waited = 0.0
    while True:
        if check is not None:
            if not await check():
                return
        elif predicate():
            return
        if waited > timeout:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor(), 0.05)
        waited += 0.05
