"""The guest agent: which one a container uses, and the command lines it gets.

ContainerSSH runs every program through ``containerssh-agent`` (reference
section 7), which the image must carry at ``agentPath``: ``console --pid``
reports the program's process id (so signals can reach it) and ``write-file``
places authentication's files. This project also ships its own agent, a POSIX
``sh`` script with the same command line (``agent.sh`` beside this module), so
the same works on any image that has ``/bin/sh``.

The choice is made per container, after it is created and before it starts
(:func:`select_agent`):

* ``agentPath`` is an executable file (or a link) in the container: the
  image's own agent is used, exactly as ContainerSSH would
  (:attr:`AgentKind.IMAGE`);
* ``agentPath`` does not exist: the script is copied there
  (:attr:`AgentKind.INSTALLED`). Only the container's file system changes,
  never the image; the default idle command
  (``/usr/bin/containerssh-agent wait-signal ...``) and commands that name the
  agent then work as they do on ContainerSSH's guest image;
* the copy is refused (a read-only root file system) or ``agentPath`` is
  something else (a directory, a file without execute permission): the script
  is passed to ``/bin/sh -c`` with every command (:attr:`AgentKind.INLINE`).
"""

from __future__ import annotations

import enum
import functools
import io
import posixpath
import tarfile
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs

from conch_container import messages
from conch_container.backend.docker.engine.errors import EngineError
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.backend.docker.engine.api import Engine
    from conch_container.config import DockerExecutionConfig

#: ``$0`` of the script when it is passed to ``sh -c``.
INLINE_NAME = "containerssh-agent"
#: The shell the project's agent needs in the image.
SHELL = "/bin/sh"

# Go's os.FileMode type bits, as the engine reports them in a path stat.
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MODE_NOT_A_FILE = _MODE_DIR | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


class AgentKind(enum.Enum):
    """Where a container's guest agent comes from."""

    #: The image's own ``containerssh-agent`` at ``agentPath``.
    IMAGE = "image"
    #: This project's agent, copied to ``agentPath`` before the container started.
    INSTALLED = "installed"
    #: This project's agent, passed to ``/bin/sh -c`` with each command.
    INLINE = "inline"


@functools.cache
def agent_script() -> str:
    """The project's agent (``agent.sh``)."""
    return resources.files(__package__).joinpath("agent.sh").read_text(encoding="utf-8")


@attrs.frozen
class GuestAgent:
    """A container's guest agent and how to invoke it.

    :ivar kind: where it comes from.
    :ivar path: ``agentPath``: where it is in the container (not used inline).
    """

    kind: AgentKind
    path: str

    @classmethod
    def configured(cls, execution: DockerExecutionConfig) -> GuestAgent | None:
        """What ContainerSSH assumes: the image's agent at ``agentPath``; None if disabled."""
        if execution.disable_agent:
            return None
        return cls(AgentKind.IMAGE, execution.agent_path)

    @property
    def builtin(self) -> bool:
        """Whether this is the project's own agent."""
        return self.kind is not AgentKind.IMAGE

    @property
    def installed_path(self) -> str | None:
        """Where a program can run the agent in the container (None if it is passed inline)."""
        return None if self.kind is AgentKind.INLINE else self.path

    def command(self, *args: str) -> list[str]:
        """The command line that runs the agent with ``args``."""
        if self.kind is AgentKind.INLINE:
            return [SHELL, "-c", agent_script(), INLINE_NAME, *args]
        return [self.path, *args]

    def console(self, program: Sequence[str]) -> list[str]:
        """Run ``program`` after the agent reported its process id (which it keeps)."""
        return self.command("console", "--pid", "--", *program)

    def signal(self, pid: int, name: str) -> list[str]:
        """Send signal ``name`` (without ``SIG``) to process ``pid``."""
        return self.command("signal", "--pid", str(pid), "--signal", name)

    def write_file(self, path: str) -> list[str]:
        """Copy stdin to ``path``, mode 0600."""
        return self.command("write-file", path)


def install_archive(path: str, script: str, mtime: float = 0.0) -> bytes:
    """A tar archive that puts ``script`` at ``path`` (mode 0755, owned by root).

    It is meant to be unpacked at ``/``; the engine creates missing parent
    directories.

    :raises ValueError: if ``path`` is not an absolute path to a file.
    """
    normal = posixpath.normpath(path)
    if not path.startswith("/") or normal in ("/", "//"):
        raise ValueError(f"not an absolute file path: {path!r}")
    data = script.encode("utf-8")
    info = tarfile.TarInfo(normal.lstrip("/"))
    info.size = len(data)
    info.mode = 0o755
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def usable_agent(stat: dict[str, Any]) -> str | None:
    """Why the engine's ``stat`` of ``agentPath`` is not a program (None if it may be one).

    A symbolic link is trusted: the engine does not follow it.
    """
    mode = stat.get("mode")
    if not isinstance(mode, int) or isinstance(mode, bool):
        return "the engine reported no file mode"
    if mode & _MODE_SYMLINK:
        return None
    if mode & _MODE_DIR:
        return "it is a directory"
    if mode & _MODE_NOT_A_FILE:
        return "it is not a regular file"
    if not mode & 0o111:
        return "it is not executable"
    return None


async def select_agent(
    reactor: Any,
    engine: Engine,
    container_id: str,
    agent_path: str,
    *,
    timeout: float,
    log: CodeLogger,
) -> GuestAgent:
    """Choose (and, if needed, install) the guest agent of a created container.

    Never fails: when the image's agent is missing and the project's cannot be
    copied into the container, the inline form is used. Each engine call is
    bounded by ``timeout`` seconds. Logs ``DOCKER_GUEST_AGENT_SELECTED``.

    :param engine: the container's engine (``path_stat``, ``put_archive``).
    """
    agent = await _choose(reactor, engine, container_id, agent_path, timeout, log)
    log.event(
        messages.DOCKER_GUEST_AGENT_SELECTED,
        "Using the {agent} guest agent ({agentPath})",
        agent=agent.kind.value,
        agentPath=agent_path,
    )
    return agent


async def _choose(
    reactor: Any,
    engine: Engine,
    container_id: str,
    agent_path: str,
    timeout: float,
    log: CodeLogger,
) -> GuestAgent:
    inline = GuestAgent(AgentKind.INLINE, agent_path)
    if not agent_path.startswith("/"):
        # Found through the image's PATH, as under ContainerSSH: nothing to check.
        return GuestAgent(AgentKind.IMAGE, agent_path)
    try:
        stat = await with_deadline(reactor, timeout, engine.path_stat(container_id, agent_path))
    except (EngineError, DeadlineExceeded) as e:
        _install_failed(log, agent_path, f"cannot look at {agent_path}: {_reason(e)}")
        return inline
    if stat is not None:
        unusable = usable_agent(stat)
        if unusable is None:
            return GuestAgent(AgentKind.IMAGE, agent_path)
        _install_failed(log, agent_path, f"{agent_path} exists but {unusable}")
        return inline
    try:
        archive = install_archive(agent_path, agent_script(), reactor.seconds())
        await with_deadline(reactor, timeout, engine.put_archive(container_id, "/", archive))
    except (EngineError, DeadlineExceeded, ValueError) as e:
        _install_failed(log, agent_path, _reason(e))
        return inline
    return GuestAgent(AgentKind.INSTALLED, agent_path)


def _reason(error: Exception) -> str:
    return getattr(error, "message", None) or str(error)


def _install_failed(log: CodeLogger, agent_path: str, reason: str) -> None:
    log.event(
        messages.DOCKER_GUEST_AGENT_INSTALL_FAILED,
        "Cannot place the guest agent at {agentPath}: {reason}; "
        "passing it to /bin/sh with each command instead",
        agentPath=agent_path,
        reason=reason,
    )
