"""An SSH connection in Kubernetes ``session`` mode: no pod of its own, one per session channel.

As in ContainerSSH nothing is created at connect. Authentication's
``files`` are kept and written into each session's pod before its program
starts. Closing the connection
(:class:`~conch_container.backend.kubernetes.sessionowner.SessionOwner`)
closes every session, which deletes its pod (within ``timeouts.podStop``);
the pods carry the gateway's instance label like connection-mode pods, so
the backend's clean-up finds them too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from conch_container import messages
from conch_container.backend.kubernetes.agents import pod_agent
from conch_container.backend.kubernetes.sessionmode.session import KubernetesPodSession
from conch_container.backend.kubernetes.sessionowner import SessionOwner
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import IBackendConnection
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, FileValue

if TYPE_CHECKING:
    from conch_container.backend.kubernetes.client import ClusterClient
    from conch_container.config.kubernetes import KubernetesConfig


@implementer(IBackendConnection)
class KubernetesSessionConnection(SessionOwner[KubernetesPodSession]):
    """The session pods of one SSH connection."""

    def __init__(
        self,
        *,
        reactor: Any,
        cluster: ClusterClient,
        config: KubernetesConfig,
        metadata: ConnectionMetadata,
        instance_id: str,
        log: CodeLogger,
        on_closed: Callable[[KubernetesSessionConnection], object],
        removal_failed: Callable[[], object],
    ) -> None:
        super().__init__(log, on_closed)
        self._reactor = reactor
        self._cluster = cluster
        self._config = config
        self._metadata = metadata
        self._instance_id = instance_id
        self._removal_failed = removal_failed
        # Session pods run the program, not an idle command that proves an agent.
        self._agent = pod_agent(config, pod_runs_agent=False)
        self._files: dict[str, FileValue] = {}

    async def write_files(self, files: Mapping[str, FileValue]) -> None:
        """Keep ``files``: each session's pod gets them before its program starts."""
        self._files.update(files)

    def open_forward(
        self, channel_id: object, host: str, port: int, *, unix: bool = False
    ) -> KubernetesPodSession:
        """Refused: in session mode no pod lives as long as the connection to dial from.

        :raises ContainerSSHError: (``SSH_FORWARD_FAILED``) always.
        """
        raise ContainerSSHError(
            messages.SSH_FORWARD_FAILED,
            "Port forwarding needs the connection execution mode.",
            "in session mode no pod lives as long as the connection to dial from",
            channelId=channel_id,
        )

    def open_session(self, channel_id: object) -> KubernetesPodSession:
        """A new session channel, whose program will run in a pod of its own."""
        self._refuse_if_closing(channel_id)
        session = KubernetesPodSession(
            reactor=self._reactor,
            cluster=self._cluster,
            config=self._config,
            metadata=self._metadata,
            files=self._files,
            agent=self._agent,
            instance_id=self._instance_id,
            log=self._log,
            channel_id=channel_id,
            on_closed=self._sessions.discard,
            removal_failed=self._removal_failed,
        )
        return self._track(session)
