"""Tests for the guest agent's choice and command lines, exit signals and the PID handshake.

Units only (fakes for the engine, a :class:`~twisted.internet.task.Clock`);
the agent script itself is exercised in ``test_docker_agent_script`` and the
whole in ``test_docker_agent_integration``.
"""

from __future__ import annotations

import io
import tarfile
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from conch_container import messages
from conch_container.backend.agentprotocol import TerminalPidReader
from conch_container.backend.docker.agent import (
    INLINE_NAME,
    AgentKind,
    GuestAgent,
    agent_script,
    install_archive,
    select_agent,
    usable_agent,
)
from conch_container.backend.docker.connectionmode.files import write_files
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.backend.docker.engine.stream import ExecStreamProtocol, StreamEvents
from conch_container.backend.docker.execops import SIGNAL_NUMBERS, SIGNALS, exit_status
from conch_container.interfaces import ExitStatus
from conch_container.log.logger import CodeLogger

#: Go's os.FileMode bits as the engine reports them.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_NAMED_PIPE = 1 << 25


def answer(item: Any) -> Deferred[Any]:
    if isinstance(item, Exception):
        return fail(item)
    if isinstance(item, Deferred):
        return item
    return succeed(item)


class FakeEngine:
    """Answers the engine's ``path_stat`` and ``put_archive``."""

    def __init__(self, stat: Any = None, put: Any = None) -> None:
        self.stat = stat
        self.put = put
        self.stats: list[tuple[str, str]] = []
        self.archives: list[tuple[str, str, bytes]] = []

    def path_stat(self, container_id: str, path: str) -> Deferred[Any]:
        self.stats.append((container_id, path))
        return answer(self.stat)

    def put_archive(self, container_id: str, path: str, data: bytes) -> Deferred[Any]:
        self.archives.append((container_id, path, data))
        return answer(self.put)


def onlcr(data: bytes) -> bytes:
    """What a terminal with default settings makes of output bytes."""
    return data.replace(b"\n", b"\r\n")


class GuestAgentCommandTests(SynchronousTestCase):
    def test_image_and_installed_agents_run_by_path(self) -> None:
        """An agent file is run by its path with ContainerSSH's command line."""
        for kind in (AgentKind.IMAGE, AgentKind.INSTALLED):
            agent = GuestAgent(kind, "/usr/bin/containerssh-agent")
            self.assertEqual(
                agent.console(["/bin/sh", "-c", "echo hi"]),
                [
                    "/usr/bin/containerssh-agent",
                    "console",
                    "--pid",
                    "--",
                    "/bin/sh",
                    "-c",
                    "echo hi",
                ],
            )
            self.assertEqual(
                agent.signal(42, "USR1"),
                ["/usr/bin/containerssh-agent", "signal", "--pid", "42", "--signal", "USR1"],
            )
            self.assertEqual(
                agent.write_file("/home/u/.ssh/id"),
                ["/usr/bin/containerssh-agent", "write-file", "/home/u/.ssh/id"],
            )

    def test_inline_agent_goes_through_sh(self) -> None:
        """The inline agent is the script given to /bin/sh -c, with the same arguments."""
        agent = GuestAgent(AgentKind.INLINE, "/usr/bin/containerssh-agent")
        self.assertEqual(
            agent.console(["/bin/true"]),
            ["/bin/sh", "-c", agent_script(), INLINE_NAME, "console", "--pid", "--", "/bin/true"],
        )

    def test_builtin(self) -> None:
        """Only the image's agent is not the project's own."""
        self.assertFalse(GuestAgent(AgentKind.IMAGE, "/a").builtin)
        self.assertTrue(GuestAgent(AgentKind.INSTALLED, "/a").builtin)
        self.assertTrue(GuestAgent(AgentKind.INLINE, "/a").builtin)

    def test_configured(self) -> None:
        """Without a choice, the image's agent at agentPath is assumed; none when disabled."""
        enabled = SimpleNamespace(disable_agent=False, agent_path="/opt/agent")
        self.assertEqual(GuestAgent.configured(enabled), GuestAgent(AgentKind.IMAGE, "/opt/agent"))
        disabled = SimpleNamespace(disable_agent=True, agent_path="/opt/agent")
        self.assertIsNone(GuestAgent.configured(disabled))

    def test_script_is_posix_sh(self) -> None:
        """The shipped script starts with a /bin/sh interpreter line."""
        self.assertTrue(agent_script().startswith("#!/bin/sh\n"))


class InstallArchiveTests(SynchronousTestCase):
    def test_single_executable_file(self) -> None:
        """The archive holds the script at the path (relative to /), mode 0755, owned by root."""
        data = install_archive("/usr/bin/containerssh-agent", "#!/bin/sh\necho\n", 1700000000)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            self.assertEqual([m.name for m in members], ["usr/bin/containerssh-agent"])
            (member,) = members
            self.assertTrue(member.isfile())
            self.assertEqual(member.mode, 0o755)
            self.assertEqual((member.uid, member.gid), (0, 0))
            self.assertEqual(member.mtime, 1700000000)
            extracted = tar.extractfile(member)
            assert extracted is not None
            self.assertEqual(extracted.read(), b"#!/bin/sh\necho\n")

    def test_path_normalised(self) -> None:
        """Redundant separators and dots do not reach the archive."""
        data = install_archive("/opt//x/./agent", "x")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.assertEqual(tar.getnames(), ["opt/x/agent"])

    def test_bad_paths(self) -> None:
        """Relative paths and the root are refused."""
        for path in ("containerssh-agent", "", "/", "//"):
            self.assertRaises(ValueError, install_archive, path, "x")


class UsableAgentTests(SynchronousTestCase):
    def test_executable_file(self) -> None:
        """A regular file with an execute bit may be the agent."""
        self.assertIsNone(usable_agent({"mode": 0o755}))
        self.assertIsNone(usable_agent({"mode": 0o100}))

    def test_symlink_trusted(self) -> None:
        """A symbolic link is trusted (the engine does not follow it)."""
        self.assertIsNone(usable_agent({"mode": MODE_SYMLINK | 0o777}))

    def test_unusable(self) -> None:
        """Directories, special files, files without execute bits and bad answers are not."""
        self.assertIn("directory", usable_agent({"mode": MODE_DIR | 0o755}) or "")
        self.assertIn("regular", usable_agent({"mode": MODE_NAMED_PIPE | 0o755}) or "")
        self.assertIn("executable", usable_agent({"mode": 0o644}) or "")
        self.assertIsNotNone(usable_agent({}))
        self.assertIsNotNone(usable_agent({"mode": True}))


class SelectAgentTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver()
        self.log = CodeLogger("tests", observer=self.events)
        self.clock = Clock()
        self.clock.advance(1234)

    def select(self, engine: FakeEngine, path: str = "/usr/bin/containerssh-agent") -> Any:
        return Deferred.fromCoroutine(
            select_agent(self.clock, engine, "c1", path, timeout=5, log=self.log)
        )

    def selected(self) -> list[str]:
        return [e["agent"] for e in self.events if e.get("code") == "DOCKER_GUEST_AGENT_SELECTED"]

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events]

    def test_image_agent(self) -> None:
        """An executable file at agentPath is the image's agent; nothing is copied."""
        engine = FakeEngine(stat={"name": "containerssh-agent", "mode": 0o755})
        agent = self.successResultOf(self.select(engine))
        self.assertEqual(agent, GuestAgent(AgentKind.IMAGE, "/usr/bin/containerssh-agent"))
        self.assertEqual(engine.stats, [("c1", "/usr/bin/containerssh-agent")])
        self.assertEqual(engine.archives, [])
        self.assertEqual(self.selected(), ["image"])

    def test_missing_agent_installed(self) -> None:
        """Without a file at agentPath, the script is unpacked there (at /)."""
        engine = FakeEngine(stat=None, put=None)
        agent = self.successResultOf(self.select(engine))
        self.assertEqual(agent, GuestAgent(AgentKind.INSTALLED, "/usr/bin/containerssh-agent"))
        ((container_id, directory, data),) = engine.archives
        self.assertEqual((container_id, directory), ("c1", "/"))
        self.assertEqual(data, install_archive("/usr/bin/containerssh-agent", agent_script(), 1234))
        self.assertEqual(self.selected(), ["installed"])
        self.assertEqual(self.codes(), ["DOCKER_GUEST_AGENT_SELECTED"])

    def test_install_refused(self) -> None:
        """A refused copy (read-only root file system) falls back to the inline agent."""
        engine = FakeEngine(stat=None, put=EngineError("container rootfs is marked read-only"))
        agent = self.successResultOf(self.select(engine))
        self.assertEqual(agent.kind, AgentKind.INLINE)
        self.assertEqual(
            self.codes(), ["DOCKER_GUEST_AGENT_INSTALL_FAILED", "DOCKER_GUEST_AGENT_SELECTED"]
        )
        self.assertIn("read-only", self.events[0]["reason"])
        self.assertEqual(self.events[0]["log_level"].name, "warn")

    def test_unusable_file_not_overwritten(self) -> None:
        """Something else at agentPath is left alone; the inline agent is used."""
        engine = FakeEngine(stat={"name": "containerssh-agent", "mode": 0o644})
        agent = self.successResultOf(self.select(engine))
        self.assertEqual(agent.kind, AgentKind.INLINE)
        self.assertEqual(engine.archives, [])
        self.assertIn("not executable", self.events[0]["reason"])

    def test_stat_error(self) -> None:
        """When the engine cannot say what is at agentPath, nothing is overwritten."""
        engine = FakeEngine(stat=EngineError("boom"))
        agent = self.successResultOf(self.select(engine))
        self.assertEqual(agent.kind, AgentKind.INLINE)
        self.assertEqual(engine.archives, [])

    def test_stat_timeout(self) -> None:
        """A stat that does not answer within the timeout falls back to the inline agent."""
        engine = FakeEngine(stat=Deferred())
        d = self.select(engine)
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(d).kind, AgentKind.INLINE)

    def test_relative_agent_path(self) -> None:
        """A bare agentPath is found through the image's PATH, as under ContainerSSH."""
        engine = FakeEngine()
        agent = self.successResultOf(self.select(engine, "containerssh-agent"))
        self.assertEqual(agent, GuestAgent(AgentKind.IMAGE, "containerssh-agent"))
        self.assertEqual(engine.stats, [])


class ExitStatusTests(SynchronousTestCase):
    def test_signal_numbers(self) -> None:
        """Every signal name the agent accepts has its Linux number."""
        self.assertEqual(set(SIGNAL_NUMBERS), set(SIGNALS))
        self.assertEqual((SIGNAL_NUMBERS["KILL"], SIGNAL_NUMBERS["USR1"]), (9, 10))

    def test_delivered_signal(self) -> None:
        """128 + N after the gateway delivered signal N is that signal."""
        self.assertEqual(exit_status(137, {"KILL"}), ExitStatus(signal="KILL"))
        self.assertEqual(exit_status(143, {"INT", "TERM"}), ExitStatus(signal="TERM"))

    def test_not_delivered(self) -> None:
        """128 + N without that signal from the gateway stays an exit code."""
        self.assertEqual(exit_status(137, set()), ExitStatus(code=137))
        self.assertEqual(exit_status(143, {"KILL"}), ExitStatus(code=143))

    def test_ordinary_codes(self) -> None:
        """A program that handled the signal and exited normally reports its code."""
        self.assertEqual(exit_status(0, {"TERM"}), ExitStatus(code=0))
        self.assertEqual(exit_status(9, {"KILL"}), ExitStatus(code=9))


class RecordingEvents(StreamEvents):
    def __init__(self) -> None:
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.ended: list[str | None] = []

    def pid_received(self, pid: int) -> None:
        self.pids.append(pid)

    def pid_failed(self, reason: str) -> None:
        self.failures.append(reason)

    def output_ended(self, error: str | None) -> None:
        self.ended.append(error)

    def stream_closed(self) -> None:
        pass


class TerminalPidReaderTests(SynchronousTestCase):
    def read(self, chunks: list[bytes]) -> tuple[list[int], bytes]:
        pids: list[int] = []
        rest = bytearray()
        reader = TerminalPidReader(pids.append, rest.extend)
        for chunk in chunks:
            if pids:
                rest.extend(chunk)
            else:
                reader.feed(chunk)
        return pids, bytes(rest)

    def test_onlcr_undone(self) -> None:
        """A PID whose bytes include 0x0A or 0x0D is read back through the terminal's onlcr."""
        for pid in (10, 13, 0x0A0A, 0x0D0A, 0x0A0D, 0x0D0D, 2600, 3338, 4194303, 1, 255):
            raw = pid.to_bytes(4, "little") + b"out\n"
            for chunks in (
                [onlcr(raw)],
                [bytes([b]) for b in onlcr(raw)],
                [onlcr(raw)[:3], onlcr(raw)[3:]],
            ):
                pids, rest = self.read(chunks)
                self.assertEqual(pids, [pid], (pid, chunks))
                self.assertEqual(rest, b"out\r\n", (pid, chunks))

    def test_output_starting_with_newline(self) -> None:
        """Program output that starts with a newline right after the PID is kept."""
        pids, rest = self.read([onlcr((10).to_bytes(4, "little") + b"\nx")])
        self.assertEqual((pids, rest), ([10], b"\r\nx"))

    def test_protocol_uses_it_with_a_terminal(self) -> None:
        """An exec stream with a terminal reads PID 10 correctly and forwards the rest."""
        out = bytearray()
        events = RecordingEvents()
        protocol = ExecStreamProtocol(out.extend, out.extend, events, tty=True, expect_pid=True)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(onlcr((10).to_bytes(4, "little") + b"hello\n"))
        self.assertEqual(events.pids, [10])
        self.assertEqual(bytes(out), b"hello\r\n")


class WriteFilesWithoutAgentTests(SynchronousTestCase):
    def test_disabled_agent(self) -> None:
        """With the agent disabled no file is written; each is logged DOCKER_FILE_WRITE_FAILED."""
        events = EventLoggingObserver()
        log = CodeLogger("tests", observer=events)
        files = {"/a": SimpleNamespace(value=b"1"), "/b": SimpleNamespace(value=b"2")}
        d = Deferred.fromCoroutine(
            write_files(Clock(), object(), "c1", None, files, timeout=5, log=log)
        )
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(
            [(e["code"], e["path"]) for e in events],
            [("DOCKER_FILE_WRITE_FAILED", "/a"), ("DOCKER_FILE_WRITE_FAILED", "/b")],
        )
        self.assertEqual(messages.DOCKER_FILE_WRITE_FAILED.level.name, "WARNING")

    def test_engine_refuses_exec(self) -> None:
        """An exec the engine refuses is a logged failure; the other files are still tried."""

        class Refusing:
            calls = 0

            def exec_create(self, *args: Any) -> Deferred[str]:
                self.calls += 1
                return fail(EngineError("no such container"))

        events = EventLoggingObserver()
        log = CodeLogger("tests", observer=events)
        engine = Refusing()
        agent = GuestAgent(AgentKind.INSTALLED, "/agent")
        files = {"/a": SimpleNamespace(value=b"1"), "/b": SimpleNamespace(value=b"2")}
        d = Deferred.fromCoroutine(
            write_files(Clock(), engine, "c1", agent, files, timeout=5, log=log)
        )
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(engine.calls, 2)
        self.assertEqual(
            [e["code"] for e in events],
            ["DOCKER_FILE_WRITE", "DOCKER_FILE_WRITE_FAILED"] * 2,
        )
        self.assertIn("no such container", events[1]["reason"])
