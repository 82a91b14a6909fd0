"""The pod a connection gets in ``connection`` mode, built from ``kubernetes.pod``.

What ContainerSSH does (reference sections 6.1 and 6.4): the configured
``metadata`` and ``spec`` are copied; the console container
(``consoleContainerNumber``) runs the idle command as its ``command``
(which, unlike Docker's ``Cmd``, replaces the image's entrypoint); the
connection's environment goes into every container and init container,
because an exec into a pod cannot carry environment of its own.

Labels say whose pod it is: ``containerssh_connection_id``, and
``containerssh_username``, the authenticated name with every character other
than letters, digits and ``.`` replaced by ``-`` (left out with a warning
when it is longer than a label value may be). The client's address is an
annotation, ``containerssh_ip`` (``:`` replaced by ``-``). The
``exposeAuthMetadataAs{Env,Labels,Annotations}`` maps add the named
metadata entries. This gateway adds ``conch_container_instance``, so that
the clean-up of leftovers finds its own pods and never another replica's.

Nothing here talks to the cluster; :func:`pod_manifest` is a pure function
of the configuration and the connection.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conch_container import messages
from conch_container.codes import Level
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config.kubernetes import KubernetesPodConfig
    from conch_container.metadata import ConnectionMetadata, MetadataValue

LABEL_CONNECTION_ID = "containerssh_connection_id"
LABEL_USERNAME = "containerssh_username"
ANNOTATION_IP = "containerssh_ip"
#: Our own label: which gateway instance owns the pod, for clean-up.
LABEL_INSTANCE = "conch_container_instance"
#: The longest value a Kubernetes label may have.
MAX_LABEL_VALUE = 63

_NOT_LABEL_SAFE = re.compile(r"[^A-Za-z0-9.]")


def label_safe_username(username: str) -> str:
    """``username`` as ContainerSSH labels it: all but ``[A-Za-z0-9.]`` become ``-``."""
    return _NOT_LABEL_SAFE.sub("-", username)


def instance_selector(instance_id: str) -> str:
    """The label selector of every pod this gateway instance created."""
    return f"{LABEL_INSTANCE}={instance_id}"


def pod_manifest(
    pod: KubernetesPodConfig,
    metadata: ConnectionMetadata,
    *,
    instance_id: str,
    log: CodeLogger,
) -> dict[str, Any]:
    """The pod to create for the connection ``metadata`` describes.

    :param pod: the connection's ``kubernetes.pod`` section (connection mode).
    :param instance_id: this gateway's identity, put on the pod as a label.
    :param log: where a username too long for a label is reported.
    :return: a new pod object; the configuration is not changed.
    """
    meta: dict[str, Any] = copy.deepcopy(dict(pod.metadata))
    spec: dict[str, Any] = copy.deepcopy(dict(pod.spec))
    if not meta.get("name") and not meta.get("generateName"):
        # ContainerSSH names the pod after the connection when nothing else does.
        meta["name"] = f"containerssh-{metadata.connection_id}"
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    labels[LABEL_CONNECTION_ID] = metadata.connection_id
    username = label_safe_username(metadata.effective_username)
    if len(username) > MAX_LABEL_VALUE:
        log.event(
            messages.KUBERNETES_USERNAME_TOO_LONG,
            "The username is longer than {limit} characters: the pod has no {label} label",
            level=Level.WARNING,
            limit=MAX_LABEL_VALUE,
            label=LABEL_USERNAME,
        )
    else:
        labels[LABEL_USERNAME] = username
    annotations[ANNOTATION_IP] = metadata.remote_ip.replace(":", "-")
    labels.update(_exposed(metadata.metadata, pod.expose_auth_metadata_as_labels))
    annotations.update(_exposed(metadata.metadata, pod.expose_auth_metadata_as_annotations))
    # Set last: a configured label of the same name must not hide the pod from clean-up.
    labels[LABEL_INSTANCE] = instance_id
    meta["labels"] = labels
    meta["annotations"] = annotations

    env = _exposed(metadata.metadata, pod.expose_auth_metadata_as_env)
    env.update({name: value.value for name, value in metadata.environment.items()})
    for container in [*spec.get("containers", []), *(spec.get("initContainers") or [])]:
        if env:
            container["env"] = [
                *(container.get("env") or []),
                *({"name": name, "value": value} for name, value in env.items()),
            ]
    console = spec["containers"][pod.console_container_number]
    console["command"] = list(pod.idle_command)
    console.pop("args", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def console_container_name(pod: KubernetesPodConfig) -> str:
    """The name of the container programs run in (``consoleContainerNumber``)."""
    return str(pod.spec["containers"][pod.console_container_number]["name"])


def _exposed(metadata: Mapping[str, MetadataValue], names: Mapping[str, str]) -> dict[str, str]:
    """The metadata entries ``names`` maps (metadata key to name), under their new names."""
    return {name: metadata[key].value for key, name in names.items() if key in metadata}
