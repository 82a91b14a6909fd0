"""Which guest agent programs run through in a pod.

ContainerSSH runs the image's agent at ``agentPath``. Where the pod is known
to have it (the gateway started the pod running it: ContainerSSH's default
idle command, ``agentPath wait-signal ...``, on its guest image), so does the
gateway; otherwise it passes its own agent to ``/bin/sh`` with each command,
which any image with a shell can run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conch_container.backend.docker.agent import AgentKind, GuestAgent

if TYPE_CHECKING:
    from conch_container.config.kubernetes import KubernetesConfig


def pod_agent(config: KubernetesConfig, *, pod_runs_agent: bool) -> GuestAgent | None:
    """The guest agent of a pod (None with ``disableAgent``).

    :param pod_runs_agent: the pod is known to run ``agentPath`` (:func:`runs_agent`).
    """
    if config.pod.disable_agent:
        return None
    if pod_runs_agent:
        return GuestAgent(AgentKind.IMAGE, config.pod.agent_path)
    return GuestAgent(AgentKind.INLINE, config.pod.agent_path)


def runs_agent(config: KubernetesConfig) -> bool:
    """Whether pods the gateway starts from ``config`` run ``agentPath`` (as their idle command)."""
    idle = config.pod.idle_command
    return bool(idle) and idle[0] == config.pod.agent_path
