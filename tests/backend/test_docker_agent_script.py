"""The project's guest agent script, run by the real shells installed on the host.

Each case runs ``agent.sh`` in a subprocess under busybox ``sh``, ``dash``
and ``bash --posix`` (the ``/bin/sh`` of busybox/Alpine, Debian/Ubuntu and
Fedora-like images); a shell that is not installed is skipped. Signals are
only ever sent to processes these tests started.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from conch_container.backend.docker.agent import INLINE_NAME, agent_script

#: How long any one agent run may take.
TIMEOUT = 20


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except OSError:
        return 4194304


def _caught_signals(pid: int) -> int:
    """The ``SigCgt`` mask of a process (signals it has handlers for)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    return 0


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class AgentScriptMixin(_Base):
    """The cases; subclasses name the shell."""

    shell: Sequence[str] = ()

    def setUp(self) -> None:
        executable = shutil.which(self.shell[0])
        if executable is None:
            raise SkipTest(f"{self.shell[0]} is not installed")
        self.sh = [executable, *self.shell[1:]]
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.script = os.path.join(self.dir, "agent")
        with open(self.script, "w") as f:
            f.write(agent_script())

    # -- helpers

    def argv(self, *args: str, inline: bool = False) -> list[str]:
        if inline:
            return [*self.sh, "-c", agent_script(), INLINE_NAME, *args]
        return [*self.sh, self.script, *args]

    def agent(
        self, *args: str, stdin: bytes = b"", inline: bool = False, env: Any = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*args, inline=inline),
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT,
            env=env,
            check=False,
        )

    def start(self, *args: str, env: Any = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.addCleanup(self.reap, process)
        return process

    @staticmethod
    def reap(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)

    def wait_for_handlers(self, pid: int, *signals: signal.Signals) -> None:
        """Wait until ``pid`` handles ``signals`` (its traps are set)."""
        wanted = 0
        for sig in signals:
            wanted |= 1 << (sig - 1)
        deadline = time.monotonic() + TIMEOUT
        while _caught_signals(pid) & wanted != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} never handled {signals}")
            time.sleep(0.01)

    def wait_for_blocker(self, pid: int) -> int:
        """The child wait-signal blocks on, once it exists (killed at cleanup if left)."""
        deadline = time.monotonic() + TIMEOUT
        while not (children := _children(pid)):
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} never started its child")
            time.sleep(0.01)
        (child,) = children
        self.addCleanup(_kill_blocker, child)
        return child

    def encoder(self, pid: int) -> bytes:
        """The agent's PID bytes for ``pid``: its encoder run with ``$$`` replaced."""
        text = agent_script().replace("agent_rest=$$", f"agent_rest={pid}")
        assert text != agent_script()
        done = subprocess.run(
            [*self.sh, "-c", text, INLINE_NAME, "console", "--pid", "--", "/bin/true"],
            capture_output=True,
            timeout=TIMEOUT,
            check=True,
        )
        return done.stdout

    # -- console

    def test_console_pid_is_the_programs(self) -> None:
        """console --pid writes 4 little-endian bytes, the PID the program then has."""
        for inline in (False, True):
            done = self.agent("console", "--pid", "--", "/bin/sh", "-c", "echo $$", inline=inline)
            self.assertEqual(done.returncode, 0, done.stderr)
            pid = int.from_bytes(done.stdout[:4], "little")
            self.assertEqual(done.stdout[4:], f"{pid}\n".encode())

    def test_console_pid_bytes(self) -> None:
        """The octal printf encoding gives the exact bytes, NUL and newline included."""
        for pid in (1, 10, 13, 255, 256, 2570, 65535, 65536, 4194304, 0x0A0D0A):
            self.assertEqual(self.encoder(pid), pid.to_bytes(4, "little"), pid)

    def test_console_without_pid(self) -> None:
        """Without --pid only the program's output appears; stdin reaches it."""
        done = self.agent("console", "--", "/bin/sh", "-c", "cat; exit 3", stdin=b"in")
        self.assertEqual((done.returncode, done.stdout), (3, b"in"))

    def test_console_env(self) -> None:
        """--env NAME=VALUE reaches the program; values may hold spaces and '='."""
        done = self.agent(
            "console", "--env", "A=b c", "--env", "B=x=y", "--",
            "/bin/sh", "-c", 'printf "%s|%s" "$A" "$B"',
        )  # fmt: skip
        self.assertEqual(done.stdout, b"b c|x=y")

    def test_console_bad_arguments(self) -> None:
        """Bad arguments exit 1 before anything runs."""
        for args in (
            ["console"],
            ["console", "--"],
            ["console", "--pid", "/bin/true"],
            ["console", "--bogus", "--", "/bin/true"],
            ["console", "--env", "NOVALUE", "--", "/bin/true"],
            ["console", "--env", "1A=x", "--", "/bin/true"],
            ["console", "--env"],
        ):
            done = self.agent(*args)
            self.assertEqual(done.returncode, 1, args)
            self.assertEqual(done.stdout, b"", args)

    def test_console_exec_failure(self) -> None:
        """A program that cannot run, or is not named by a path, exits 127."""
        for program in ("/nonexistent/program", "true"):
            done = self.agent("console", "--pid", "--", program)
            self.assertEqual(done.returncode, 127, program)

    def test_console_wait(self) -> None:
        """--wait consumes an empty start line; anything else exits 2."""
        done = self.agent("console", "--wait", "--", "/bin/sh", "-c", "cat", stdin=b"\nrest")
        self.assertEqual((done.returncode, done.stdout), (0, b"rest"))
        for stdin in (b"x\nrest", b""):
            done = self.agent("console", "--wait", "--", "/bin/true", stdin=stdin)
            self.assertEqual(done.returncode, 2, stdin)

    # -- wait-signal and signal

    def test_wait_signal(self) -> None:
        """wait-signal ends at one of its signals, prints the message without newline, exits 0."""
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            process = self.start(
                "wait-signal", "--signal", "USR1", "--signal", "TERM", "--message", "got it"
            )
            self.wait_for_handlers(process.pid, signal.SIGUSR1, signal.SIGTERM)
            process.send_signal(sig)
            out, err = process.communicate(timeout=TIMEOUT)
            self.assertEqual((process.returncode, out, err), (0, b"got it", b""))

    def test_wait_signal_through_signal_command(self) -> None:
        """ContainerSSH's conformance case 5: the agent's own signal command ends wait-signal."""
        process = self.start("wait-signal", "--signal", "USR1", "--message", "USR1 received")
        self.wait_for_handlers(process.pid, signal.SIGUSR1)
        done = self.agent("signal", "--pid", str(process.pid), "--signal", "USR1")
        self.assertEqual(done.returncode, 0, done.stderr)
        out, _ = process.communicate(timeout=TIMEOUT)
        self.assertEqual((process.returncode, out), (0, b"USR1 received"))

    def test_wait_signal_leaves_no_process(self) -> None:
        """The child wait-signal blocks on is gone once it returned."""
        process = self.start("wait-signal", "--signal", "USR2")
        self.wait_for_handlers(process.pid, signal.SIGUSR2)
        child = self.wait_for_blocker(process.pid)
        process.send_signal(signal.SIGUSR2)
        self.assertEqual(process.communicate(timeout=TIMEOUT)[0], b"")
        self.assertEqual(process.returncode, 0)
        _wait_gone(child)

    def test_wait_signal_shell_only(self) -> None:
        """Without sleep on the PATH, wait-signal blocks on a stopped shell, then removes it."""
        empty = os.path.join(self.dir, "empty-path")
        os.makedirs(empty)
        process = self.start(
            "wait-signal", "--signal", "USR1", "--message", "m", env={"PATH": empty}
        )
        self.wait_for_handlers(process.pid, signal.SIGUSR1)
        child = self.wait_for_blocker(process.pid)
        process.send_signal(signal.SIGUSR1)
        self.assertEqual(process.communicate(timeout=TIMEOUT), (b"m", b""))
        self.assertEqual(process.returncode, 0)
        _wait_gone(child)

    def test_wait_signal_other_signal(self) -> None:
        """A signal it does not wait for ends wait-signal by that signal, child included."""
        process = self.start("wait-signal", "--signal", "USR2", "--message", "no")
        self.wait_for_handlers(process.pid, signal.SIGUSR2, signal.SIGTERM)
        child = self.wait_for_blocker(process.pid)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.communicate(timeout=TIMEOUT), (b"", b""))
        self.assertEqual(process.returncode, -signal.SIGTERM)
        _wait_gone(child)

    def test_wait_signal_killed(self) -> None:
        """A killed wait-signal's output ends: its child holds none of its streams."""
        process = self.start("wait-signal", "--signal", "USR1")
        self.wait_for_handlers(process.pid, signal.SIGUSR1)
        self.wait_for_blocker(process.pid)
        process.kill()
        self.assertEqual(process.communicate(timeout=TIMEOUT), (b"", b""))
        self.assertEqual(process.returncode, -signal.SIGKILL)

    def test_wait_signal_bad_arguments(self) -> None:
        """No signal, an unknown signal or an unknown option exit 1."""
        for args in (
            ["wait-signal"],
            ["wait-signal", "--signal", "WINCH"],
            ["wait-signal", "--signal", "USR1", "--bogus"],
            ["wait-signal", "--signal", "USR1", "--message"],
        ):
            self.assertEqual(self.agent(*args).returncode, 1, args)

    def test_signal_kills(self) -> None:
        """signal delivers KILL to a process the test started."""
        process = self.start("wait-signal", "--signal", "USR1")
        self.wait_for_handlers(process.pid, signal.SIGUSR1)
        self.wait_for_blocker(process.pid)
        done = self.agent("signal", "--pid", str(process.pid), "--signal", "KILL")
        self.assertEqual(done.returncode, 0, done.stderr)
        process.communicate(timeout=TIMEOUT)
        self.assertEqual(process.returncode, -signal.SIGKILL)

    def test_signal_no_such_process(self) -> None:
        """A process id no process can have exits 2."""
        done = self.agent("signal", "--pid", str(_pid_max() + 1), "--signal", "TERM")
        self.assertEqual(done.returncode, 2)

    def test_signal_bad_arguments(self) -> None:
        """Missing, duplicate or malformed options exit 1 (and send nothing)."""
        for args in (
            ["signal"],
            ["signal", "--signal", "TERM"],
            ["signal", "--pid", str(_pid_max() + 1)],
            ["signal", "--pid", "0", "--signal", "TERM"],
            ["signal", "--pid", "-1", "--signal", "TERM"],
            ["signal", "--pid", "x", "--signal", "TERM"],
            ["signal", "--pid", "5", "--pid", "6", "--signal", "TERM"],
            ["signal", "--pid", str(_pid_max() + 1), "--signal", "STOP"],
        ):
            self.assertEqual(self.agent(*args).returncode, 1, args)

    # -- write-file

    def test_write_file(self) -> None:
        """write-file copies stdin exactly into a new file of mode 0600."""
        path = os.path.join(self.dir, "secret")
        content = bytes(range(1, 256)) + b"\x00\n\\n no newline at the end"
        done = self.agent("write-file", path, stdin=content)
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_write_file_existing(self) -> None:
        """An existing file is truncated and made 0600."""
        path = os.path.join(self.dir, "old")
        with open(path, "wb") as f:
            f.write(b"a much longer previous content")
        os.chmod(path, 0o644)
        done = self.agent("write-file", path, stdin=b"new")
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_write_file_shell_only(self) -> None:
        """Without cat and chmod on the PATH, text still arrives intact in a 0600 file."""
        empty = os.path.join(self.dir, "empty-path")
        os.makedirs(empty)
        path = os.path.join(self.dir, "text")
        content = b"line one\n  indented \\ backslash\n\ttab\nno newline at the end"
        done = self.agent("write-file", path, stdin=content, env={"PATH": empty})
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_write_file_errors(self) -> None:
        """A missing directory or a wrong argument count exits 1."""
        missing = os.path.join(self.dir, "no", "such", "dir")
        self.assertEqual(self.agent("write-file", missing).returncode, 1)
        self.assertEqual(self.agent("write-file").returncode, 1)
        self.assertEqual(self.agent("write-file", "a", "b").returncode, 1)

    # -- modes

    def test_unknown_mode(self) -> None:
        """No mode or an unknown one exits 1."""
        self.assertEqual(self.agent().returncode, 1)
        self.assertEqual(self.agent("license").returncode, 1)

    def test_forward_server_without_helper(self) -> None:
        """``forward-server`` runs the image's forwarding helper; where there is none
        (this host), it exits 1 and names the path. The image that has it is
        tests.guest.test_forward_server_engine's."""
        helper = "/usr/libexec/conch-container/forward-server"
        if os.path.exists(helper):
            raise SkipTest(f"{helper} exists on this host")
        done = self.agent("forward-server")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, b"")
        self.assertIn(
            f"forward-server: this image has no forwarding helper ({helper})".encode(), done.stderr
        )


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _kill_blocker(pid: int) -> None:
    """Kill a child wait-signal left behind, if that PID is still such a child."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return
    if argv[:2] == [b"sleep", b"60"] or b"kill -s STOP $$" in argv:
        os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int) -> None:
    """Wait until ``pid`` has ended (gone, or a zombie not yet reaped by init)."""
    deadline = time.monotonic() + TIMEOUT
    while _state(pid) not in (None, "Z"):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} is still there")
        time.sleep(0.01)


def _state(pid: int) -> str | None:
    """A process's state letter, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class BusyboxShTests(AgentScriptMixin, SynchronousTestCase):
    shell = ("busybox", "sh")


class DashTests(AgentScriptMixin, SynchronousTestCase):
    shell = ("dash",)


class BashPosixTests(AgentScriptMixin, SynchronousTestCase):
    shell = ("bash", "--posix")
