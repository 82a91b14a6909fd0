"""Finding (or making) the named pod of ``persistent`` mode.

In persistent mode every connection of a configuration runs in one pod,
named by ``kubernetes.pod.metadata.name`` in its ``namespace``, that
outlives the connections: the gateway execs into it as in connection mode
and never deletes it. :func:`persistent_pod` looks the pod up (up to
:data:`LOOKUP_TRIES` reads, :data:`LOOKUP_INTERVAL` seconds apart on the
reactor's clock, as ContainerSSH does); an answer of 404 is final. A
missing pod refuses the connection (``KUBERNETES_POD_NOT_FOUND``, with a
user message that says so) unless ``createMissingPods`` is set; then it is
created from the same manifest as a connection mode pod (idle command,
labels, environment) under the configured name. Two connections racing to
create it both end up in it: the loser's 409 ``AlreadyExists`` is a
lookup. A pod that is not ready yet is waited for within
``timeouts.podStart``.

A pod made here never carries the instance label
(:data:`~.podmanifest.LABEL_INSTANCE`), even one the configuration sets: the
clean-up of leftovers (:func:`~.podlifecycle.remove_leftovers`, at start-up
and in ``remove_all``) selects by that label, so it can never find a
persistent pod. A pod that fails to start is not deleted either, since
another connection may already be waiting for it; the operator owns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import task

from conch_container import messages
from conch_container.backend.kubernetes.errors import ImagePullFailed, KubernetesError
from conch_container.backend.kubernetes.podlifecycle import IMAGE_PULL_USER_MESSAGE, PodRef
from conch_container.backend.kubernetes.podmanifest import LABEL_INSTANCE, pod_manifest
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.backend.kubernetes.podstatus import is_ready, phase
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.log.logger import CodeLogger

if TYPE_CHECKING:
    from conch_container.config.kubernetes import KubernetesConfig
    from conch_container.metadata import ConnectionMetadata

#: How many times the pod is read before the lookup gives up.
LOOKUP_TRIES = 3
#: Seconds between two reads of the lookup.
LOOKUP_INTERVAL = 2.0
#: What the SSH user reads when the pod is missing and is not to be created.
POD_NOT_FOUND_USER_MESSAGE = "The pod your connection runs in does not exist."
#: What the SSH user reads when the pod has ended.
POD_ENDED_USER_MESSAGE = "The pod your connection runs in has stopped or is stopping."


async def persistent_pod(
    reactor: Any,
    pods: PodAPI,
    config: KubernetesConfig,
    metadata: ConnectionMetadata,
    *,
    log: CodeLogger,
) -> PodRef:
    """The configured pod, ready for execs: found, or created with ``createMissingPods``.

    :raises KubernetesError: logged, with a user message, when the pod is
        missing (and not to be created), cannot be read or created, does
        not get ready within ``timeouts.podStart``, has ended or is being deleted.
    """
    pod = PodRef(
        str(config.pod.metadata.get("namespace") or "default"), str(config.pod.metadata["name"])
    )
    log = log.bind(pod=pod.name)
    found = await look_up(reactor, pods, pod, log=log)
    if found is None:
        if not config.pod.create_missing_pods:
            raise _logged(
                log,
                KubernetesError(
                    messages.KUBERNETES_POD_NOT_FOUND,
                    f"pod {pod.name} does not exist in namespace {pod.namespace} "
                    "and kubernetes.pod.createMissingPods is false",
                    user_message=POD_NOT_FOUND_USER_MESSAGE,
                ),
            )
        manifest = pod_manifest(config.pod, metadata, instance_id="", log=log)
        # Not the gateway's pod to clean up: without the label no clean-up can select it.
        manifest["metadata"]["labels"].pop(LABEL_INSTANCE, None)
        found = await _create(reactor, pods, pod, manifest, config.timeouts.pod_start, log=log)
    if "deletionTimestamp" in (found.get("metadata") or {}):
        raise _logged(
            log,
            KubernetesError(
                messages.KUBERNETES_POD_WAIT_FAILED,
                f"pod {pod.name} is being deleted; the gateway does not replace a persistent "
                "pod that is going",
                user_message=POD_ENDED_USER_MESSAGE,
            ),
        )
    if not is_ready(found):
        found = await _wait_until_ready(pods, pod, config.timeouts.pod_start, log=log)
    if phase(found) in ("Succeeded", "Failed"):
        raise _logged(
            log,
            KubernetesError(
                messages.KUBERNETES_POD_WAIT_FAILED,
                f"pod {pod.name} has ended (phase {phase(found)}); the gateway does not "
                "restart or replace a persistent pod",
                user_message=POD_ENDED_USER_MESSAGE,
            ),
        )
    return pod


async def look_up(
    reactor: Any, pods: PodAPI, pod: PodRef, *, log: CodeLogger
) -> dict[str, Any] | None:
    """The pod as the API server has it, or None if it answered that there is none.

    A read that fails is repeated, :data:`LOOKUP_INTERVAL` seconds later, up
    to :data:`LOOKUP_TRIES` reads in all; the last failure is raised (logged).
    """
    log.event(
        messages.KUBERNETES_POD_LOOKUP,
        "Looking up pod {pod} in namespace {namespace}",
        namespace=pod.namespace,
    )
    for attempt in range(1, LOOKUP_TRIES + 1):
        try:
            return await pods.get_pod(pod.namespace, pod.name)
        except KubernetesError as e:
            if attempt == LOOKUP_TRIES:
                raise _logged(
                    log,
                    KubernetesError(
                        messages.KUBERNETES_POD_LOOKUP_FAILED,
                        f"{e.explanation} (tried {LOOKUP_TRIES} times)",
                        status=e.status,
                        reason=e.reason,
                    ),
                ) from None
            log.event(
                messages.KUBERNETES_POD_LOOKUP_FAILED,
                "Cannot read pod {pod} (try {attempt} of {tries}), trying again: {reason}",
                level=Level.WARNING,
                attempt=attempt,
                tries=LOOKUP_TRIES,
                reason=e.explanation,
            )
            await task.deferLater(reactor, LOOKUP_INTERVAL)
    raise AssertionError("unreachable")  # pragma: no cover


async def _create(
    reactor: Any,
    pods: PodAPI,
    pod: PodRef,
    manifest: dict[str, Any],
    timeout: float,
    *,
    log: CodeLogger,
) -> dict[str, Any]:
    """Create the pod; if another connection was first (409), read the one it made."""
    log.event(
        messages.KUBERNETES_POD_CREATE,
        "Creating pod {pod} in namespace {namespace}",
        namespace=pod.namespace,
    )
    try:
        return await with_deadline(reactor, timeout, pods.create_pod(pod.namespace, manifest))
    except DeadlineExceeded as e:
        raise _logged(log, KubernetesError(messages.KUBERNETES_POD_CREATE_FAILED, str(e))) from None
    except KubernetesError as e:
        if e.status != 409:
            raise _logged(log, e) from None
    log.event(
        messages.KUBERNETES_POD_CREATE_RACE,
        "Pod {pod} was created by another connection meanwhile; using it",
    )
    found = await look_up(reactor, pods, pod, log=log)
    if found is None:
        raise _logged(
            log,
            KubernetesError(
                messages.KUBERNETES_POD_CREATE_FAILED,
                f"pod {pod.name} already existed when created, and was gone when read",
            ),
        )
    return found


async def _wait_until_ready(
    pods: PodAPI, pod: PodRef, timeout: float, *, log: CodeLogger
) -> dict[str, Any]:
    log.event(messages.KUBERNETES_POD_WAIT, "Waiting for pod {pod} to be ready")
    try:
        return await pods.wait_until_ready(pod.namespace, pod.name, timeout)
    except ImagePullFailed as e:
        raise _logged(
            log, KubernetesError(e.code, e.explanation, user_message=IMAGE_PULL_USER_MESSAGE)
        ) from None
    except KubernetesError as e:
        raise _logged(log, e) from None


def _logged(log: CodeLogger, error: KubernetesError) -> KubernetesError:
    error.log(log)
    return error
