"""The pod of one session channel (``session`` mode), built on the connection-mode manifest.

Reference section 6.4 ("session"): the console container runs the program
itself, through the guest agent's ``console --wait``, so that nothing runs
before the gateway attached to the container and wrote authentication's
files (the agent waits for an empty line on stdin); with ``disableAgent``
the program is the command as it is. The container gets a terminal
(``tty``) when the channel asked for one, and ``stdin`` and ``stdinOnce``
always: the attach is the program's stdin, and its end is the program's
EOF. ``restartPolicy`` is ``Never`` (the configuration loader refuses any
other value). The channel's environment (``env`` requests, ``TERM``) goes
into the console container after the connection's.

Labels, annotations and the connection's environment are those of
connection mode (:func:`~conch_container.backend.kubernetes.podmanifest.pod_manifest`).
A connection has many session pods, so a configured ``name`` (or the one
connection mode gives a pod without ``generateName``) becomes a
``generateName`` prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conch_container.backend.docker.agent import GuestAgent
from conch_container.backend.kubernetes.podmanifest import pod_manifest
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config.kubernetes import KubernetesPodConfig
    from conch_container.metadata import ConnectionMetadata


def console_command(agent: GuestAgent | None, argv: Sequence[str]) -> list[str]:
    """The console container's command: ``argv`` held by the agent until released."""
    if agent is None:
        return list(argv)
    # No --pid: the program is the container's main process, its PID is 1.
    return agent.command("console", "--wait", "--", *argv)


def session_pod_manifest(
    pod: KubernetesPodConfig,
    metadata: ConnectionMetadata,
    *,
    command: Sequence[str],
    env: Mapping[str, str],
    tty: bool,
    instance_id: str,
    log: CodeLogger,
) -> dict[str, Any]:
    """The pod to create for one session channel of the connection ``metadata`` describes.

    :param command: the console container's command (:func:`console_command`).
    :param env: the channel's environment.
    :param tty: whether the channel asked for a terminal.
    """
    manifest = pod_manifest(pod, metadata, instance_id=instance_id, log=log)
    meta = manifest["metadata"]
    name = meta.pop("name", None)
    if name:
        # A name would be taken by the connection's first session pod.
        meta["generateName"] = f"{name}-"
    spec = manifest["spec"]
    spec["restartPolicy"] = "Never"
    console = spec["containers"][pod.console_container_number]
    console["command"] = list(command)
    console.pop("args", None)
    console["tty"] = tty
    console["stdin"] = True
    console["stdinOnce"] = True
    if env:
        console["env"] = [
            *(console.get("env") or []),
            *({"name": name, "value": value} for name, value in env.items()),
        ]
    return manifest
