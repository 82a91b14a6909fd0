"""Pod specs: what the server accepts, the defaults it fills in, the Docker containers it makes.

A field is refused (422 ``Invalid``) when running the pod without it would
behave differently from a cluster: volumes, init containers, probes, host
namespaces, ``env`` from references, a restart policy other than ``Never``.
Fields that only steer scheduling or accounting (``dnsPolicy``,
``nodeSelector``, ``resources``, ...) are accepted and echoed, and have no
effect. The spec is echoed with the defaults a real server adds, so clients
that read them back find them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from conch_container.testing.kubeapi.status import invalid

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONTAINER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

_POD_USED = {"containers", "restartPolicy", "terminationGracePeriodSeconds"}
_POD_IGNORED = {
    "dnsPolicy",
    "schedulerName",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "serviceAccountName",
    "serviceAccount",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priority",
    "priorityClassName",
    "preemptionPolicy",
    "securityContext",
    "hostname",
    "subdomain",
    "nodeName",
}
_CONTAINER_USED = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "workingDir",
    "tty",
    "stdin",
    "stdinOnce",
    "securityContext",
}
_CONTAINER_IGNORED = {
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "resources",
    "ports",
}

Cause = tuple[str, str, str]


def validate(pod: dict[str, Any]) -> None:
    """Refuse a pod this server cannot run as a cluster would (:class:`ApiError` 422)."""
    metadata = pod.get("metadata") or {}
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    causes: list[Cause] = []
    if not metadata.get("name") and not metadata.get("generateName"):
        causes.append(
            (
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        )
    elif metadata.get("name") and not _NAME.match(str(metadata["name"])):
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.'",
            )
        )
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        causes.append(("FieldValueRequired", "spec", "Required value"))
        raise invalid(name, causes)
    for key in spec:
        if key not in _POD_USED | _POD_IGNORED:
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"spec.{key}",
                    "Unsupported value: not supported by this test server",
                )
            )
    if spec.get("restartPolicy", "Never") != "Never":
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.restartPolicy",
                'Unsupported value: supported values: "Never"',
            )
        )
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if not isinstance(grace, int) or grace < 0:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.terminationGracePeriodSeconds",
                "Invalid value: must be >= 0",
            )
        )
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("FieldValueRequired", "spec.containers", "Required value"))
    else:
        seen: set[str] = set()
        for i, container in enumerate(containers):
            causes += _container_causes(f"spec.containers[{i}]", container, seen)
    if causes:
        raise invalid(name, causes)


def _container_causes(path: str, container: Any, seen: set[str]) -> list[Cause]:
    if not isinstance(container, dict):
        return [("FieldValueInvalid", path, "Invalid value: must be an object")]
    causes: list[Cause] = []
    for key in container:
        if key not in _CONTAINER_USED | _CONTAINER_IGNORED:
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{path}.{key}",
                    "Unsupported value: not supported by this test server",
                )
            )
    name = container.get("name")
    if not isinstance(name, str) or not name:
        causes.append(("FieldValueRequired", f"{path}.name", "Required value"))
    elif not _CONTAINER_NAME.match(name):
        causes.append(
            (
                "FieldValueInvalid",
                f"{path}.name",
                "Invalid value: a lowercase RFC 1123 label must consist of lower case "
                "alphanumeric characters or '-'",
            )
        )
    elif name in seen:
        causes.append(("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{name}"'))
    else:
        seen.add(name)
    if not isinstance(container.get("image"), str) or not container.get("image"):
        causes.append(("FieldValueRequired", f"{path}.image", "Required value"))
    for key in ("command", "args"):
        value = container.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            causes.append(
                ("FieldValueInvalid", f"{path}.{key}", "Invalid value: must be a list of strings")
            )
    for j, env in enumerate(container.get("env") or []):
        if (
            not isinstance(env, dict)
            or not isinstance(env.get("name"), str)
            or set(env) - {"name", "value"}
        ):
            causes.append(
                (
                    "FieldValueNotSupported",
                    f"{path}.env[{j}]",
                    "Unsupported value: only name and value are supported",
                )
            )
    security = container.get("securityContext") or {}
    if not isinstance(security, dict) or set(security) - {"runAsUser"}:
        causes.append(
            (
                "FieldValueNotSupported",
                f"{path}.securityContext",
                "Unsupported value: only runAsUser is supported",
            )
        )
    elif "runAsUser" in security and not isinstance(security["runAsUser"], int):
        causes.append(
            (
                "FieldValueInvalid",
                f"{path}.securityContext.runAsUser",
                "Invalid value: must be an integer",
            )
        )
    return causes


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as a real server stores it: defaults filled in."""
    spec = copy.deepcopy(spec)
    spec.setdefault("restartPolicy", "Never")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("nodeName", "docker")
    for container in spec["containers"]:
        image = container["image"]
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
    return spec


def docker_body(
    container: dict[str, Any], labels: dict[str, str], hostname: str = ""
) -> dict[str, Any]:
    """The ``POST /containers/create`` body for one pod container.

    ``command`` replaces the image's entrypoint and ``args`` its command, as
    in a cluster; the container has no network but loopback. ``hostname`` is
    the pod's (:func:`pod_hostname`).
    """
    stdin = bool(container.get("stdin"))
    body: dict[str, Any] = {
        "Image": container["image"],
        "Env": [f"{e['name']}={e.get('value', '')}" for e in container.get("env") or []],
        "Tty": bool(container.get("tty")),
        "OpenStdin": stdin,
        "StdinOnce": stdin and bool(container.get("stdinOnce")),
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
        "Labels": labels,
        "HostConfig": {"NetworkMode": "none"},
    }
    if container.get("command"):
        body["Entrypoint"] = list(container["command"])
    if container.get("args"):
        body["Cmd"] = list(container["args"])
    if hostname:
        body["Hostname"] = hostname
    if container.get("workingDir"):
        body["WorkingDir"] = container["workingDir"]
    user = (container.get("securityContext") or {}).get("runAsUser")
    if user is not None:
        body["User"] = str(user)
    return body


def pod_hostname(pod: dict[str, Any]) -> str:
    """The host name a pod's containers see: ``spec.hostname``, else the pod's name,
    cut to the 63 characters of a DNS label, as the kubelet does."""
    name = str(pod["spec"].get("hostname") or pod["metadata"]["name"])
    return name[:63].rstrip("-.")
