"""Writing authentication's ``files`` into the connection's pod, through the guest agent.

Each file is an exec of the agent's ``write-file PATH`` (mode 0600) with the
content on stdin, within ``timeouts.commandStart``. As in ContainerSSH, a
file that cannot be written is a warning, not a failed login. File contents
never reach a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conch_container import messages
from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.execsession import HelperExec
from conch_container.backend.kubernetes.podlifecycle import PodRef
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.log.logger import CodeLogger
from conch_container.metadata import FileValue

if TYPE_CHECKING:
    from conch_container.backend.kubernetes.client import ClusterClient


async def write_files(
    reactor: Any,
    cluster: ClusterClient,
    pod: PodRef,
    container: str,
    agent: GuestAgent | None,
    files: Mapping[str, FileValue],
    *,
    timeout: float,
    log: CodeLogger,
) -> None:
    """Write each of ``files`` (path to content) in ``container``; failures are warnings."""
    for path, content in files.items():
        if agent is None:
            reason: str | None = "file writes need the guest agent, which is disabled"
        else:
            helper = HelperExec(cluster, pod, container)
            try:
                reason = await with_deadline(
                    reactor, timeout, helper.run(agent.write_file(path), content.value, timeout)
                )
            except (KubernetesError, DeadlineExceeded) as e:
                reason = e.explanation if isinstance(e, KubernetesError) else str(e)
        if reason is not None:
            log.event(
                messages.KUBERNETES_EXEC_FAILED,
                "Could not write the file {path}: {reason}",
                level=Level.WARNING,
                path=path,
                reason=reason,
            )
