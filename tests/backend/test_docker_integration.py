"""The Docker backend against the real Docker engine (skipped without one).

Every test runs with its own gateway instance id and checks afterwards that no
container carrying it is left behind.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.internet import task
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from conch_container import messages
from conch_container.backend.docker.containerconfig import (
    LABEL_CONNECTION_ID,
    LABEL_INSTANCE,
    LABEL_IP,
    LABEL_USERNAME,
)
from conch_container.backend.docker.pull import MISSING_IMAGE_USER_MESSAGE
from conch_container.config import AppConfig, ConfigError
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError, RequestRejected
from conch_container.interfaces import (
    IBackendConnection,
    IBackendSession,
    IContainerBackend,
    ProgramRequest,
    PtyRequest,
)
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    DockerBackendTestCase,
    labelled_containers,
    make_config,
    make_context,
    reactor,
)


class DockerBackendIntegrationTests(DockerBackendTestCase):
    # -- programs

    async def test_interfaces(self) -> None:
        """The backend, its connection and its sessions provide their interfaces."""
        verifyObject(IContainerBackend, self.backend)
        connection = await self.connect()
        verifyObject(IBackendConnection, connection)
        verifyObject(IBackendSession, connection.open_session(1))

    async def test_echo(self) -> None:
        """An exec runs in the container; its output, EOF and exit status reach the channel."""
        io = await self.run_program('echo "Hello world!"')
        self.assertEqual(io.stdout_data, b"Hello world!\n")
        self.assertEqual(io.stderr_data, b"")
        assert io.status is not None
        self.assertEqual(io.status.code, 0)
        self.assertEqual(
            io.events, ["register_producer", "unregister_producer", "output_closed", "exited"]
        )
        for code in ("DOCKER_EXEC", "DOCKER_EXEC_CREATE", "DOCKER_EXEC_ATTACH", "DOCKER_EXIT_CODE"):
            self.assertIn(code, self.codes())

    async def test_env(self) -> None:
        """Variables set on the channel reach the program."""
        io = await self.run_program('echo "$FOO"', env={"FOO": "Hello world!"})
        self.assertEqual(io.stdout_data, b"Hello world!\n")

    async def test_exit_code(self) -> None:
        """The program's exit code is reported."""
        io = await self.run_program("exit 42")
        assert io.status is not None
        self.assertEqual(io.status.code, 42)

    async def test_stderr_separate(self) -> None:
        """Without a terminal stdout and stderr stay apart."""
        io = await self.run_program("echo out; echo err >&2; echo out2")
        self.assertEqual(io.stdout_data, b"out\nout2\n")
        self.assertEqual(io.stderr_data, b"err\n")

    async def test_operators_not_truncated(self) -> None:
        """A path command followed by ; runs as a shell would run it (both commands)."""
        io = await self.run_program("/bin/echo a; /bin/echo b")
        self.assertEqual(io.stdout_data, b"a\nb\n")

    async def test_direct_exec_quoting(self) -> None:
        """A path command runs without a shell, its quoted words intact."""
        io = await self.run_program("/bin/echo 'a  b' '$x' \\;")
        self.assertEqual(io.stdout_data, b"a  b $x ;\n")

    async def test_stdin_counted(self) -> None:
        """A million bytes of stdin reach the program, then EOF."""
        io = await self.run_program("wc -c", stdin=b"x" * 1_000_000)
        self.assertEqual(io.stdout_data.strip(), b"1000000")
        assert io.status is not None
        self.assertEqual(io.status.code, 0)

    async def test_stdin_round_trip(self) -> None:
        """Binary data written to cat comes back unchanged."""
        data = os.urandom(1_000_000)
        io = await self.run_program("cat", stdin=data)
        self.assertEqual(io.stdout_data, data)

    async def test_auth_environment_and_labels(self) -> None:
        """Authentication environment reaches programs; the container carries the labels."""
        connection = await self.connect(
            environment={"AUTH_VAR": "from-auth"},
            metadata={"META_VAR": "from-meta"},
            exposeAuthMetadataAsEnv=True,
        )
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", 'echo "$AUTH_VAR $META_VAR"'), io)
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"from-auth from-meta\n")
        labels = (await _inspect(self.client, connection.container_id))["Config"]["Labels"]
        self.assertEqual(labels[LABEL_INSTANCE], self.instance_id)
        self.assertEqual(labels[LABEL_IP], "127.0.0.1")
        self.assertEqual(labels[LABEL_USERNAME], "alice")
        self.assertEqual(len(labels[LABEL_CONNECTION_ID]), 32)

    async def test_subsystem(self) -> None:
        """A subsystem runs its binary: sftp-server answers an SFTP init with its version."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("subsystem", "sftp"), io)
        session.write(b"\x00\x00\x00\x05\x01\x00\x00\x00\x03")  # SSH_FXP_INIT, version 3
        out = await io.when_stdout_contains(b"\x02")
        self.assertEqual(out[4], 2)  # SSH_FXP_VERSION
        session.close_stdin()
        await io.when_exited()

    async def test_unknown_subsystem(self) -> None:
        """An unconfigured subsystem is a logged rejection (DOCKER_SUBSYSTEM_NOT_SUPPORTED).

        A :class:`RequestRejected` makes the SSH layer answer the request with
        a plain failure; no exec is created.
        """
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        with self.assertRaises(RequestRejected) as caught:
            await session.start(ProgramRequest("subsystem", "nope"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_SUBSYSTEM_NOT_SUPPORTED)
        self.assertIn("DOCKER_SUBSYSTEM_NOT_SUPPORTED", self.codes())
        self.assertNotIn("DOCKER_EXEC_CREATE", self.codes())

    async def test_tty_and_resize(self) -> None:
        """With a pty the shell sees the requested size, and a resize changes it."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        session.set_env("foo", "bar")
        session.set_pty(PtyRequest("xterm", columns=80, rows=25))
        io = RecordingSessionIO()
        await session.start(ProgramRequest("shell"), io)
        session.write(b"stty size; tput cols; echo $TERM-$foo\n")
        await io.when_stdout_contains(b"xterm-bar")
        self.assertIn(b"25 80\r\n80\r\n", io.stdout_data)
        await session.resize(120, 40, 0, 0)
        session.write(b"stty size\n")
        await io.when_stdout_contains(b"40 120")
        session.write(b"exit 3\n")
        status = await io.when_exited()
        self.assertEqual(status.code, 3)
        self.assertEqual(io.stderr_data, b"")
        self.assertIn("DOCKER_EXEC_RESIZE", self.codes())

    async def test_backpressure(self) -> None:
        """Pausing the registered producer stops output until it is resumed."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        size = 20_000_000
        await session.start(ProgramRequest("exec", f"head -c {size} /dev/zero"), io)
        await _until(lambda: len(io.stdout_data) > 0)
        io.producer.pauseProducing()
        paused_at = len(io.stdout_data)
        await task.deferLater(reactor(), 0.5)
        self.assertEqual(len(io.stdout_data), paused_at)
        self.assertLess(paused_at, size)
        io.producer.resumeProducing()
        status = await io.when_exited()
        self.assertEqual((status.code, len(io.stdout_data)), (0, size))

    # -- requests that are refused

    async def test_second_start(self) -> None:
        """A second program on one session is refused with DOCKER_PROGRAM_ALREADY_RUNNING."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "sleep 30"), io)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.start(ProgramRequest("exec", "true"), RecordingSessionIO())
        self.assertEqual(caught.exception.code, messages.DOCKER_PROGRAM_ALREADY_RUNNING)
        self.assertRaises(ContainerSSHError, session.set_env, "A", "b")

    async def test_not_running(self) -> None:
        """Resize and signal without a running program fail with DOCKER_PROGRAM_NOT_RUNNING."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        for call in (lambda: session.resize(80, 25, 0, 0), lambda: session.signal("TERM")):
            with self.assertRaises(ContainerSSHError) as caught:
                await call()
            self.assertEqual(caught.exception.code, messages.DOCKER_PROGRAM_NOT_RUNNING)

    async def test_signal_without_agent(self) -> None:
        """Signals need the agent: refused with DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT."""
        connection = await self.connect()
        session = connection.open_session(0)
        self.addCleanup(session.close)
        await session.start(ProgramRequest("exec", "sleep 30"), RecordingSessionIO())
        with self.assertRaises(ContainerSSHError) as caught:
            await session.signal("TERM")
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT)

    async def test_agent_installed_when_image_lacks_it(self) -> None:
        """With the agent enabled and absent from the image, the project's agent runs it."""
        io = await self.run_program('echo "Hello world!"', disableAgent=False)
        assert io.status is not None
        self.assertEqual((io.stdout_data, io.status.code), (b"Hello world!\n", 0))
        self.assertIn("DOCKER_GUEST_AGENT_SELECTED", self.codes())
        self.assertNotIn("DOCKER_EXEC_PID_READ_FAILED", self.codes())

    # -- container lifecycle

    async def test_close_removes_container(self) -> None:
        """Closing the connection removes the container; closing again is harmless."""
        connection = await self.connect()
        container_id = connection.container_id
        session = connection.open_session(0)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "sleep 60"), io)
        await Deferred.fromCoroutine(_gather(connection.close(), connection.close()))
        await connection.close()
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        self.assertIsNone(io.status)
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.codes())
        with self.assertRaises(ContainerSSHError):
            connection.open_session(1)
        self.assertIsNotNone(container_id)

    async def test_session_close_stops_output(self) -> None:
        """After a session is closed its channel hears nothing more."""
        connection = await self.connect()
        session = connection.open_session(0)
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", "while :; do echo y; done"), io)
        await _until(lambda: len(io.stdout_data) > 0)
        await session.close()
        await session.close()
        seen = len(io.stdout_data)
        await task.deferLater(reactor(), 0.2)
        self.assertEqual(len(io.stdout_data), seen)
        self.assertIsNone(io.status)
        self.assertFalse(io.closed)

    async def test_files_written_by_agent(self) -> None:
        """Files from authentication are written through the agent before connect returns."""
        await self.connect(files={"/tmp/x": b"data"}, disableAgent=False)
        self.assertIn("DOCKER_FILE_WRITE", self.codes())
        self.assertNotIn("DOCKER_FILE_WRITE_FAILED", self.codes())

    async def test_files_refused_without_agent(self) -> None:
        """With the agent disabled, each file is refused with DOCKER_FILE_WRITE_FAILED."""
        await self.connect(files={"/tmp/x": b"data"})
        self.assertIn("DOCKER_FILE_WRITE_FAILED", self.codes())

    async def assert_connect_fails(
        self,
        code: Any,
        *,
        user_message: str = GENERIC_USER_MESSAGE,
        config: AppConfig | None = None,
        **kwargs: Any,
    ) -> ContainerSSHError:
        config = config or make_config(**kwargs)
        with self.assertRaises(ContainerSSHError) as caught:
            await self.backend.connect(make_context(config, self.log))
        error = caught.exception
        self.assertEqual(error.user_message, user_message)
        self.assertEqual(error.code, code)
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        return error

    async def test_never_pull_missing_image(self) -> None:
        """A missing image with policy Never fails creation and leaves nothing behind."""
        await self.assert_connect_fails(
            messages.DOCKER_CONTAINER_CREATE_FAILED,
            user_message=MISSING_IMAGE_USER_MESSAGE,
            container={"image": "conch-container/does-not-exist:latest"},
        )
        self.assertNotIn("DOCKER_IMAGE_PULL", self.codes())

    async def test_if_not_present_present_image(self) -> None:
        """IfNotPresent with a present image looks it up and does not pull."""
        await self.connect(imagePullPolicy="IfNotPresent")
        self.assertIn("DOCKER_IMAGE_LISTING", self.codes())
        self.assertNotIn("DOCKER_IMAGE_PULL", self.codes())

    async def test_pull_failure_retried_until_deadline(self) -> None:
        """A pull that cannot reach the registry is retried until containerStart expires."""
        await self.assert_connect_fails(
            messages.DOCKER_IMAGE_PULL_FAILED,
            imagePullPolicy="Always",
            timeouts={"containerStart": "1s"},
        )
        self.assertGreater(self.codes().count("DOCKER_IMAGE_PULL_FAILED"), 1)

    async def test_bad_mount(self) -> None:
        """An engine-rejected create (bind source missing) fails cleanly with no container."""
        await self.assert_connect_fails(
            messages.DOCKER_CONTAINER_CREATE_FAILED,
            host={"mounts": [{"type": "bind", "source": "/nonexistent-source", "target": "/x"}]},
        )

    async def test_start_failure_removes_container(self) -> None:
        """A container that was created but cannot start is removed."""
        await self.assert_connect_fails(
            messages.DOCKER_CONTAINER_START_FAILED, idleCommand=["/nonexistent/idle"]
        )
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.codes())

    async def test_config_error(self) -> None:
        """Container settings that cannot make a container: DOCKER_CONFIG_ERROR, nothing created.

        A malformed setting never gets this far, loading refuses it; an
        execution section built some other way, without an image, is refused
        here.
        """
        with self.assertRaises(ConfigError) as raised:
            make_config(container={"image": GUEST, "env": "A=1"})
        self.assertEqual(raised.exception.key_path, "docker.execution.container.env")
        config = make_config()
        execution = attrs.evolve(config.docker.execution, container={"User": "1000"})
        config = attrs.evolve(config, docker=attrs.evolve(config.docker, execution=execution))
        error = await self.assert_connect_fails(messages.DOCKER_CONFIG_ERROR, config=config)
        self.assertIn("docker.execution.container.image", error.explanation)

    async def test_close_during_launch(self) -> None:
        """Stopping the backend while a container starts leaves no container behind."""
        config = make_config(imagePullPolicy="Always", timeouts={"containerStart": "5s"})
        connecting = self.backend.connect(make_context(config, self.log))
        await _until(lambda: "DOCKER_IMAGE_PULL_FAILED" in self.codes())
        await self.backend.stop()
        with self.assertRaises(ContainerSSHError):
            await connecting
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())

    async def test_deadline_during_create(self) -> None:
        """A create call still running at the deadline leaves no container once it returns."""
        await self.connect()  # the engine client is now cached: the deadline hits the create
        config = make_config(timeouts={"containerStart": "20ms"})
        with self.assertRaises(ContainerSSHError) as caught:
            await self.backend.connect(make_context(config, self.log))
        self.assertIn(
            caught.exception.code,
            (messages.DOCKER_CONTAINER_CREATE_FAILED, messages.DOCKER_CONTAINER_START_FAILED),
        )
        # Only the first connection's container is left: the late one is already removed.
        self.assertEqual(len(await labelled_containers(self.client, self.instance_id)), 1)
        self.assertIn("DOCKER_CONTAINER_REMOVE_SUCCESSFUL", self.codes())

    async def test_remove_all(self) -> None:
        """remove_all removes every container of this gateway instance."""
        first = await self.connect()
        second = await self.connect()
        removed = await self.backend.remove_all()
        self.assertEqual(removed, 2)
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        await first.close()
        await second.close()


GUEST = make_config().docker.execution.container["Image"]


async def _inspect(client: Any, container_id: str | None) -> dict[str, Any]:
    from twisted.internet.threads import deferToThread

    return await deferToThread(client.inspect_container, container_id)


async def _gather(*ds: Deferred[Any]) -> None:
    for d in ds:
        await d


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor(), 0.02)
        waited += 0.02
