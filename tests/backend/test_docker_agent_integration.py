"""Guest agents against the real Docker engine: PIDs, signals, exit signals, files.

The same cases run for the two ways the agent gets into a container:

* the guest image has no ``containerssh-agent``: the project's agent is copied
  to ``agentPath`` before the container starts (:class:`InstalledAgentTests`);
* the image carries an agent at ``/usr/bin/containerssh-agent``
  (:class:`ImageAgentTests`). The image is built here from the guest image;
  ContainerSSH's Go binary is not available to these tests (they run
  offline, without its releases), so the project's own script is installed
  there as a stand-in. It speaks the same command line (console/--pid,
  signal, wait-signal, write-file), so what is checked is that such an
  image is used as ContainerSSH would use it: its agent, at its path,
  untouched.

Then the inline fallback (read-only root file system), a broken agent, and
``disableAgent``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import docker.errors
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from conch_container import messages
from conch_container.backend.docker.agent import AgentKind, GuestAgent, agent_script
from conch_container.backend.docker.agent import install_archive as agent_archive
from conch_container.backend.docker.connectionmode.execsession import DockerExecSession
from conch_container.config import AppConfig
from conch_container.config.docker import AGENT_PATH
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ExitStatus, ProgramRequest, PtyRequest
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    GUEST_IMAGE,
    IDLE_COMMAND,
    DockerBackendFixture,
    make_config,
    reactor,
)

#: ContainerSSH's default idle command (the configuration default too).
DEFAULT_IDLE_COMMAND = [AGENT_PATH, "wait-signal", "--signal", "INT", "--signal", "TERM"]
#: Where the stand-in agent images are kept (tagged by the script's hash).
STANDIN_REPOSITORY = "conch-container/guest-with-agent"
#: ContainerSSH's conformance case 5.
WAIT_FOR_USR1 = f'{AGENT_PATH} wait-signal --signal USR1 --message "USR1 received"'


def thd_standin_image(client: Any) -> str:
    """The guest image with the project's agent at ``/usr/bin/containerssh-agent``.

    Built once per version of the script (``docker commit`` of a created,
    never started container) and reused.
    """
    script = agent_script()
    name = f"{STANDIN_REPOSITORY}:{hashlib.sha256(script.encode()).hexdigest()[:12]}"
    try:
        client.inspect_image(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    container = client.create_container(GUEST_IMAGE)["Id"]
    try:
        client.put_archive(container, "/", agent_archive(AGENT_PATH, script))
        repository, tag = name.split(":")
        client.commit(container, repository=repository, tag=tag)
    finally:
        client.remove_container(container, force=True)
    return name


def thd_exec(client: Any, container_id: str, cmd: list[str]) -> bytes:
    """Run a command in the container from the test (not through the gateway)."""
    exec_id = client.exec_create(container_id, cmd)["Id"]
    return bytes(client.exec_start(exec_id))


if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


class PidTen:
    """An agent stand-in whose ``console`` reports process id 10, then runs the program."""

    def console(self, program: list[str]) -> list[str]:
        return ["/bin/sh", "-c", 'printf "\\012\\000\\000\\000"; exec "$@"', "pid10", *program]


class Silent:
    """An agent stand-in that runs the program without reporting its process id."""

    def console(self, program: list[str]) -> list[str]:
        return list(program)


class AgentFixture(DockerBackendFixture):
    """A backend with the configuration's defaults for the agent, on the test's image."""

    log_namespace = "tests.backend.docker.agent"

    def setUp(self) -> Deferred[None]:
        super().setUp()
        return Deferred.fromCoroutine(self.choose_image())

    async def choose_image(self) -> None:
        self.image = GUEST_IMAGE

    def execution(self, **execution: Any) -> dict[str, Any]:
        """The ``execution`` keys: the defaults of the configuration, on the test's image."""
        values: dict[str, Any] = {
            "container": {"image": self.image},
            "disableAgent": False,
            "idleCommand": DEFAULT_IDLE_COMMAND,
        }
        values.update(execution)
        return values

    def config(self, *args: Any, **execution: Any) -> AppConfig:
        return make_config(*args, **self.execution(**execution))

    async def start(
        self, connection: Any, command: str, *, pty: bool = False, session: Any = None
    ) -> tuple[Any, RecordingSessionIO]:
        if session is None:
            session = connection.open_session(0)
        self.addCleanup(session.close)
        if pty:
            session.set_pty(PtyRequest("xterm", columns=80, rows=25))
        io = RecordingSessionIO()
        await session.start(ProgramRequest("exec", command), io)
        return session, io

    async def wait_for_handler(self, connection: Any, pid: int, signal_number: int) -> None:
        """Wait until process ``pid`` in the container handles the signal (its trap is set)."""
        for _ in range(500):
            status = await deferToThread(
                thd_exec, self.client, connection.container_id, ["cat", f"/proc/{pid}/status"]
            )
            for line in status.decode().splitlines():
                if (
                    line.startswith("SigCgt:")
                    and int(line.split()[1], 16) >> (signal_number - 1) & 1
                ):
                    return
            await task.deferLater(reactor(), 0.02)
        self.fail(f"process {pid} never handled signal {signal_number}")


class AgentCases(AgentFixture):
    """Cases for any container with a guest agent file; subclasses choose the image."""

    #: The agent the container should end up with.
    expected_kind: AgentKind

    # -- the choice

    async def test_agent_selected(self) -> None:
        """The container's agent is chosen and logged; the default idle command runs."""
        connection = await self.connect()
        self.assertEqual(connection.agent, GuestAgent(self.expected_kind, AGENT_PATH))
        selected = [e for e in self.events if e.get("code") == "DOCKER_GUEST_AGENT_SELECTED"]
        self.assertEqual([e["agent"] for e in selected], [self.expected_kind.value])
        info = await deferToThread(self.client.inspect_container, connection.container_id)
        self.assertTrue(info["State"]["Running"])
        self.assertEqual(info["Config"]["Cmd"], DEFAULT_IDLE_COMMAND)

    # -- PID handshake

    async def test_pid_handshake(self) -> None:
        """The PID the agent reports is the program's, with and without a terminal."""
        connection = await self.connect()
        for pty in (False, True):
            session, io = await self.start(connection, "/bin/sh -c 'echo $$'", pty=pty)
            await io.when_exited()
            self.assertEqual(io.status, ExitStatus(code=0))
            self.assertEqual(
                io.stdout_data,
                f"{session.pid}\r\n".encode() if pty else f"{session.pid}\n".encode(),
            )

    async def test_pid_handshake_through_terminal_newlines(self) -> None:
        """With a terminal, a PID with a 0x0A or 0x0D byte (0x0A becomes CR LF) is read right.

        Process ids in a container count up: before each try a program forks
        until the id after the next few should end in 0x0A or 0x0D, learning
        from each miss how many ids the engine and the agent take in between.
        """
        connection = await self.connect()
        seen: list[int] = []
        gap = 6
        while not any(pid & 0xFF in (0x0A, 0x0D) for pid in seen):
            self.assertLess(len(seen), 10, seen)
            burn = (
                "while :; do p=$(sh -c 'echo $$'); "
                f"case $(( (p + {gap}) % 256 )) in 10|13) echo $p; exit 0;; esac; done"
            )
            _burner, burned = await self.start(connection, burn)
            await burned.when_exited()
            last_fork = int(burned.stdout_data.split()[-1])
            session, io = await self.start(connection, "/bin/sh -c 'echo $$'", pty=True)
            await io.when_exited()
            self.assertEqual(io.stdout_data, f"{session.pid}\r\n".encode())
            seen.append(session.pid)
            gap = max(1, session.pid - last_fork)

    # -- signals

    async def test_conformance_signal(self) -> None:
        """ContainerSSH's case 5: wait-signal through the agent path ends on USR1, exit 0."""
        connection = await self.connect()
        for pty in (False, True):
            session, io = await self.start(connection, WAIT_FOR_USR1, pty=pty)
            await self.wait_for_handler(connection, await session.pid_known(), 10)
            await session.signal("USR1")
            status = await io.when_exited()
            self.assertIn(b"USR1 received", io.stdout_data)
            self.assertEqual(status, ExitStatus(code=0))
        self.assertIn("DOCKER_EXEC_SIGNAL_SUCCESSFUL", self.codes())

    async def test_killed_program_reports_signal(self) -> None:
        """A program killed by the signal the client sent is reported as that signal."""
        connection = await self.connect()
        for name in ("KILL", "TERM"):
            session, io = await self.start(connection, "/bin/sleep 60")
            await session.signal(name)
            self.assertEqual(await io.when_exited(), ExitStatus(signal=name))

    async def test_exit_code_like_a_signal(self) -> None:
        """A program that exits with 137 by itself reports exit status 137."""
        connection = await self.connect()
        _session, io = await self.start(connection, "exit 137")
        self.assertEqual(await io.when_exited(), ExitStatus(code=137))

    async def test_unknown_signal_refused(self) -> None:
        """A signal name the agent does not know is refused; the program keeps running."""
        connection = await self.connect()
        session, io = await self.start(connection, "/bin/sleep 60")
        with self.assertRaises(ContainerSSHError) as caught:
            await session.signal("WINCH")
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_SIGNAL_FAILED)
        self.assertIsNone(io.status)

    # -- authentication's files and environment

    async def test_files_before_first_program(self) -> None:
        """Files are in place, mode 0600, exactly, before the first program runs."""
        content = bytes(range(256)) + b"\nend without newline"
        connection = await self.connect(files={"/root/key": content, "/root/.ssh/none/f": b"x"})
        self.assertIn("DOCKER_FILE_WRITE_FAILED", self.codes())  # the missing directory
        _session, io = await self.start(
            connection, "/bin/sh -c 'stat -c %a /root/key; cat /root/key'"
        )
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"600\n" + content)

    async def test_files_owned_by_container_user(self) -> None:
        """The agent writes as the container's user: the file is theirs."""
        connection = await self.connect(
            files={"/home/user/.token": b"t"},
            container={"image": self.image, "user": "1000"},
        )
        _session, io = await self.start(
            connection, "/bin/sh -c 'stat -c \"%u %a\" /home/user/.token'"
        )
        await io.when_exited()
        self.assertEqual(io.stdout_data, b"1000 600\n")

    async def test_environment_and_metadata(self) -> None:
        """Authentication's environment, and its metadata when exposed, reach programs."""
        environment = {"FROM_AUTH": "env value"}
        metadata = {"META": "meta value"}
        for exposed, expected in ((True, b"env value|meta value\n"), (False, b"env value|\n")):
            connection = await self.connect(
                environment=environment, metadata=metadata, exposeAuthMetadataAsEnv=exposed
            )
            _session, io = await self.start(connection, 'printf "%s|%s\\n" "$FROM_AUTH" "$META"')
            await io.when_exited()
            self.assertEqual(io.stdout_data, expected)


class InstalledAgentTests(AgentCases, TestCase):
    """The guest image has no agent: the project's is copied in."""

    expected_kind = AgentKind.INSTALLED

    async def test_installed_script(self) -> None:
        """The file at agentPath is the project's script, executable by everyone."""
        connection = await self.connect()
        out = await deferToThread(
            thd_exec, self.client, connection.container_id, ["stat", "-c", "%a %U", AGENT_PATH]
        )
        self.assertEqual(out, b"755 root\n")
        out = await deferToThread(
            thd_exec, self.client, connection.container_id, ["cat", AGENT_PATH]
        )
        self.assertEqual(out.decode(), agent_script())

    async def test_image_unchanged(self) -> None:
        """The image itself never gets the agent."""
        await self.connect()
        container = await deferToThread(self.client.create_container, GUEST_IMAGE)
        self.addCleanup(deferToThread, self.client.remove_container, container["Id"], force=True)
        with self.assertRaises(docker.errors.NotFound):
            await deferToThread(self.client.get_archive, container["Id"], AGENT_PATH)


class ImageAgentTests(AgentCases, TestCase):
    """The image carries the agent at ``/usr/bin/containerssh-agent`` (a stand-in, see above)."""

    expected_kind = AgentKind.IMAGE

    async def choose_image(self) -> None:
        self.image = await deferToThread(thd_standin_image, self.client)


class FallbackAgentTests(AgentFixture, TestCase):
    """Agents that are not a file at agentPath: inline, broken, disabled."""

    async def connect_read_only(self) -> Any:
        return await self.connect(idleCommand=IDLE_COMMAND, host={"readonlyrootfs": True})

    def session(
        self, connection: Any, agent: Any, timeouts: dict[str, Any] | None = None
    ) -> DockerExecSession:
        return DockerExecSession(
            reactor=reactor(),
            engine=connection.engine,
            container_id=connection.container_id,
            docker_config=make_config(timeouts, **self.execution()).docker,
            log=self.log,
            channel_id=7,
            agent=agent,
        )

    async def test_inline_agent_selected(self) -> None:
        """A read-only root file system takes no agent: the inline one is chosen."""
        connection = await self.connect_read_only()
        self.assertEqual(connection.agent, GuestAgent(AgentKind.INLINE, AGENT_PATH))
        self.assertIn("DOCKER_GUEST_AGENT_INSTALL_FAILED", self.codes())

    async def test_inline_agent(self) -> None:
        """Through /bin/sh -c, the agent reports PIDs and delivers signals."""
        connection = await self.connect_read_only()
        for pty in (False, True):
            session, io = await self.start(
                connection,
                "/bin/sleep 60",
                pty=pty,
                session=self.session(connection, connection.agent),
            )
            self.assertIsInstance(await session.pid_known(), int)
            await session.signal("KILL")
            self.assertEqual(await io.when_exited(), ExitStatus(signal="KILL"))

    async def test_terminal_pid_with_newline_byte(self) -> None:
        """Through a real terminal, a reported PID of 10 (0x0A, sent as CR LF) is read as 10."""
        connection = await self.connect()
        session, io = await self.start(
            connection, "echo hi", pty=True, session=self.session(connection, PidTen())
        )
        await io.when_exited()
        self.assertEqual((session.pid, io.stdout_data), (10, b"hi\r\n"))

    async def test_signal_without_pid(self) -> None:
        """No process id within the signal timeout: DOCKER_SIGNAL_FAILED_NO_PID."""
        connection = await self.connect()
        silent = self.session(connection, Silent(), timeouts={"signal": "300ms"})
        session, io = await self.start(connection, "/bin/sleep 60", session=silent)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.signal("TERM")
        self.assertEqual(caught.exception.code, messages.DOCKER_SIGNAL_FAILED_NO_PID)
        self.assertIsNone(io.status)

    async def test_broken_agent(self) -> None:
        """An agent that reports no PID: DOCKER_EXEC_PID_READ_FAILED, exit 137, no output."""
        connection = await self.connect()
        broken = GuestAgent(AgentKind.IMAGE, "/bin/false")
        _session, io = await self.start(
            connection, "echo hi", session=self.session(connection, broken)
        )
        self.assertEqual(await io.when_exited(), ExitStatus(code=137))
        self.assertEqual((io.stdout_data, io.stderr_data), (b"", b""))
        self.assertIn("DOCKER_EXEC_PID_READ_FAILED", self.codes())

    async def test_disabled(self) -> None:
        """disableAgent: no agent is chosen, signals are refused, files are not written."""
        connection = await self.connect(
            files={"/root/key": b"k"}, disableAgent=True, idleCommand=IDLE_COMMAND
        )
        codes = self.codes()
        self.assertIn("DOCKER_GUEST_AGENT_DISABLED", codes)
        self.assertIn("DOCKER_FILE_WRITE_FAILED", codes)
        self.assertNotIn("DOCKER_GUEST_AGENT_SELECTED", codes)
        self.assertIsNone(connection.agent)
        session, io = await self.start(
            connection, "/bin/sh -c 'test -e /root/key; echo $?; exec sleep 60'"
        )
        self.assertEqual(await io.when_stdout_contains(b"\n"), b"1\n")
        self.assertIsNone(session.pid)
        with self.assertRaises(ContainerSSHError) as caught:
            await session.signal("TERM")
        self.assertEqual(caught.exception.code, messages.DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT)
