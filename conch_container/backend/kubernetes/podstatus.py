"""Reading a pod's ``status`` (plain JSON, as the API server sends it).

ContainerSSH waits until the pod's phase is ``Running`` with the condition
``Ready`` true, or the pod has ended (``Succeeded``, ``Failed``); a session
mode pod's program has ended when its console container's state is
``terminated``, whose ``exitCode`` is the program's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Waiting reasons that mean the image will not come (waiting longer does not help).
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def _status(pod: dict[str, Any]) -> dict[str, Any]:
    status = pod.get("status")
    return status if isinstance(status, dict) else {}


def _container_statuses(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    status = _status(pod)
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or ():
            if isinstance(entry, dict):
                yield entry


def _state(entry: dict[str, Any], name: str) -> dict[str, Any] | None:
    state = entry.get("state")
    if not isinstance(state, dict):
        return None
    value = state.get(name)
    return value if isinstance(value, dict) else None


def phase(pod: dict[str, Any]) -> str:
    return str(_status(pod).get("phase") or "")


def is_ready(pod: dict[str, Any]) -> bool:
    """Running with condition ``Ready`` true, or ended (nothing more will happen)."""
    current = phase(pod)
    if current in ("Succeeded", "Failed"):
        return True
    if current != "Running":
        return False
    for condition in _status(pod).get("conditions") or ():
        if (
            isinstance(condition, dict)
            and condition.get("type") == "Ready"
            and condition.get("status") == "True"
        ):
            return True
    return False


def image_pull_problem(pod: dict[str, Any]) -> str | None:
    """What stops a container's image from being pulled, or None."""
    for entry in _container_statuses(pod):
        waiting = _state(entry, "waiting")
        if waiting is not None and waiting.get("reason") in IMAGE_PULL_REASONS:
            message = str(waiting.get("message") or "")
            text = f"container {entry.get('name')}: {waiting['reason']}"
            return f"{text}: {message}" if message else text
    return None


def container_exit_code(pod: dict[str, Any], container: str) -> int | None:
    """The exit code of ``container`` if it has terminated, else None."""
    for entry in _container_statuses(pod):
        if entry.get("name") != container:
            continue
        terminated = _state(entry, "terminated")
        if terminated is None:
            return None
        code = terminated.get("exitCode")
        return code if isinstance(code, int) and not isinstance(code, bool) else None
    return None


def is_terminated(pod: dict[str, Any], container: str) -> bool:
    return container_exit_code(pod, container) is not None
