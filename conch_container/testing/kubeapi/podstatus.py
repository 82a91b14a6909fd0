"""A pod's ``status`` as its containers' states change, in the real shape.

The phase and the conditions follow from the container states, as the
kubelet computes them for ``restartPolicy: Never``: Pending while any
container waits, Running once all have started, Succeeded when all ended
with 0, Failed when all ended and one did not.
"""

from __future__ import annotations

import time
from typing import Any

Pod = dict[str, Any]

_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with whole seconds, as the API server writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def initial_status(pod: Pod, now: float) -> None:
    """Pending, every container waiting for its creation."""
    pod["status"] = {
        "phase": "Pending",
        "conditions": [],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": timestamp(now),
        "qosClass": "BestEffort",
        "containerStatuses": [
            {
                "name": c["name"],
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": c["image"],
                "imageID": "",
                "started": False,
            }
            for c in pod["spec"]["containers"]
        ],
    }
    refresh(pod, now)


def container_status(pod: Pod, name: str) -> dict[str, Any]:
    for status in pod["status"]["containerStatuses"]:
        if status["name"] == name:
            return dict[str, Any](status)
    raise KeyError(name)


def _update(pod: Pod, name: str, **fields: Any) -> None:
    for status in pod["status"]["containerStatuses"]:
        if status["name"] == name:
            status.update(fields)


def set_waiting(pod: Pod, name: str, reason: str, message: str) -> None:
    _update(pod, name, state={"waiting": {"reason": reason, "message": message}})


def set_running(pod: Pod, name: str, container_id: str, image_id: str, started: float) -> None:
    _update(
        pod,
        name,
        state={"running": {"startedAt": timestamp(started)}},
        ready=True,
        started=True,
        containerID=f"docker://{container_id}",
        imageID=image_id,
    )


def set_terminated(
    pod: Pod, name: str, exit_code: int, finished: float, reason: str | None = None
) -> None:
    status = container_status(pod, name)
    running = status["state"].get("running") or {}
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": running.get("startedAt", timestamp(finished)),
        "finishedAt": timestamp(finished),
    }
    if "containerID" in status:
        terminated["containerID"] = status["containerID"]
    _update(pod, name, state={"terminated": terminated}, ready=False, started=False)


def refresh(pod: Pod, now: float) -> None:
    """Phase and conditions from the container states."""
    states = [next(iter(s["state"])) for s in pod["status"]["containerStatuses"]]
    if all(s == "terminated" for s in states):
        codes = [s["state"]["terminated"]["exitCode"] for s in pod["status"]["containerStatuses"]]
        phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
    elif any(s == "waiting" for s in states):
        phase = "Pending"
    else:
        phase = "Running"
    ready = all(s == "running" for s in states)
    creating = any(
        s["state"].get("waiting", {}).get("reason") == "ContainerCreating"
        for s in pod["status"]["containerStatuses"]
    )
    pod["status"]["phase"] = phase
    values = {
        "PodReadyToStartContainers": not creating,
        "Initialized": True,
        "Ready": ready,
        "ContainersReady": ready,
        "PodScheduled": True,
    }
    old = {c["type"]: c for c in pod["status"]["conditions"]}
    conditions = []
    for kind in _CONDITIONS:
        status = "True" if values[kind] else "False"
        previous = old.get(kind)
        changed = previous is None or previous["status"] != status
        condition = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": (
                timestamp(now) if previous is None or changed else previous["lastTransitionTime"]
            ),
        }
        if not values[kind] and kind in ("Ready", "ContainersReady"):
            condition["reason"] = (
                "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
            )
        conditions.append(condition)
    pod["status"]["conditions"] = conditions
