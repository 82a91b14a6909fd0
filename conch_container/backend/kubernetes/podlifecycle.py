"""Making and removing a connection's pod, and removing the pods a previous run left.

:func:`launch_pod` creates the pod (:mod:`.podmanifest`) and waits until it
is ready within ``timeouts.podStart``; a pod that does not get there is
removed before the error goes up, so no pod outlives a failed connect (nor
one a create made although its answer never came). As
in ContainerSSH, a create that fails in a way worth trying again (no answer,
a refused connection, 429 or a server error) is tried again every
:data:`CREATE_RETRY_INTERVAL` seconds within the same ``podStart``; an answer
that refuses the pod itself (403, 422, any other 4xx), or a server
certificate that fails verification, fails at once.
:func:`remove_pod` deletes it within ``timeouts.podStop``;
:func:`remove_leftovers` deletes every pod labelled with this gateway's
instance id in the given namespaces (never another replica's, which carry
their own id). Each step logs its ``KUBERNETES_POD_*`` code, and its
``_FAILED`` code with the API server's explanation when it fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredList

from conch_container import messages
from conch_container.backend.kubernetes.errors import ImagePullFailed, KubernetesError
from conch_container.backend.kubernetes.podmanifest import (
    LABEL_CONNECTION_ID,
    LABEL_INSTANCE,
    instance_selector,
)
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.codes import Level
from conch_container.deferreds import DeadlineExceeded, with_deadline
from conch_container.log.logger import CodeLogger

#: What the SSH user reads when the pod's image cannot be pulled.
IMAGE_PULL_USER_MESSAGE = "The container image of your session could not be pulled."
#: Seconds between two attempts to create a pod, ContainerSSH's interval.
CREATE_RETRY_INTERVAL = 10.0


@attrs.frozen
class PodRef:
    """A created pod: where it is and what it is called."""

    namespace: str
    name: str


async def launch_pod(
    reactor: Any,
    pods: PodAPI,
    manifest: Mapping[str, Any],
    *,
    timeout: float,
    stop_timeout: float,
    log: CodeLogger,
) -> PodRef:
    """Create the pod and wait until it is ready, within ``timeout`` seconds.

    :raises KubernetesError: logged, with a user message; an image that cannot
        be pulled is reported at once (``KUBERNETES_IMAGE_PULL_FAILED``).
    """
    namespace = str(manifest["metadata"].get("namespace") or "default")
    deadline = reactor.seconds() + timeout
    created = await _create_with_retries(
        reactor, pods, namespace, manifest, deadline, stop_timeout, log
    )
    pod = PodRef(namespace, str(created["metadata"]["name"]))
    log.event(messages.KUBERNETES_POD_WAIT, "Waiting for pod {pod} to be ready", pod=pod.name)
    try:
        await pods.wait_until_ready(pod.namespace, pod.name, max(deadline - reactor.seconds(), 0.0))
    except ImagePullFailed as e:
        await remove_pod(reactor, pods, pod, timeout=stop_timeout, log=log)
        raise _logged(
            log,
            KubernetesError(e.code, e.explanation, user_message=IMAGE_PULL_USER_MESSAGE),
        ) from None
    except BaseException as e:
        await remove_pod(reactor, pods, pod, timeout=stop_timeout, log=log)
        if isinstance(e, KubernetesError):
            raise _logged(log, e) from None
        raise
    return pod


async def _create_with_retries(
    reactor: Any,
    pods: PodAPI,
    namespace: str,
    manifest: Mapping[str, Any],
    deadline: float,
    stop_timeout: float,
    log: CodeLogger,
) -> dict[str, Any]:
    """Create the pod, trying again while the failure is worth it and ``deadline`` allows.

    A create that got no answer may still have made the pod: what carries
    the connection's labels is removed before the next attempt or the error.
    """
    while True:
        log.event(
            messages.KUBERNETES_POD_CREATE,
            "Creating pod in namespace {namespace}",
            namespace=namespace,
        )
        left = max(deadline - reactor.seconds(), 0.0)
        try:
            return await with_deadline(reactor, left, pods.create_pod(namespace, manifest))
        except DeadlineExceeded as e:
            error = KubernetesError(messages.KUBERNETES_POD_CREATE_FAILED, str(e))
        except KubernetesError as e:
            error = e
        if error.status is None and not error.certificate_refused:
            await _remove_unanswered(reactor, pods, namespace, manifest, stop_timeout, log)
        if not worth_retrying(error) or deadline - reactor.seconds() <= CREATE_RETRY_INTERVAL:
            raise _logged(log, error)
        log.event(
            messages.KUBERNETES_POD_CREATE_FAILED,
            "Failed to create a pod, trying again in {interval:g} s: {reason}",
            interval=CREATE_RETRY_INTERVAL,
            reason=error.explanation,
        )
        await task.deferLater(reactor, CREATE_RETRY_INTERVAL)


async def _remove_unanswered(
    reactor: Any,
    pods: PodAPI,
    namespace: str,
    manifest: Mapping[str, Any],
    timeout: float,
    log: CodeLogger,
) -> None:
    """Remove the pod an unanswered create may have made, found by the connection's labels."""
    labels = manifest["metadata"].get("labels") or {}
    if LABEL_CONNECTION_ID not in labels or LABEL_INSTANCE not in labels:
        return
    selector = ",".join(f"{key}={labels[key]}" for key in (LABEL_INSTANCE, LABEL_CONNECTION_ID))
    try:
        found = await with_deadline(reactor, timeout, pods.list_pods(namespace, selector))
    except (KubernetesError, DeadlineExceeded) as e:
        log.event(
            messages.KUBERNETES_POD_LIST_FAILED,
            "Cannot look for a pod the unanswered create made: {reason}",
            reason=e.explanation if isinstance(e, KubernetesError) else str(e),
        )
        return
    for found_pod in found:
        pod = PodRef(namespace, str(found_pod["metadata"]["name"]))
        await remove_pod(reactor, pods, pod, timeout=timeout, log=log)


def worth_retrying(error: KubernetesError) -> bool:
    """Whether a failed create may succeed when tried again unchanged.

    No answer at all (refused connection, timeout, unreadable answer), 429
    and server errors are passing troubles; any other 4xx refuses the pod
    itself (invalid, forbidden, quota) and would be refused again, and so
    would a server certificate that fails verification.
    """
    if error.certificate_refused:
        return False
    return error.status is None or error.status == 429 or error.status >= 500


async def remove_pod(
    reactor: Any, pods: PodAPI, pod: PodRef, *, timeout: float, log: CodeLogger
) -> bool:
    """Delete the pod at once (no grace), within ``timeout`` seconds; False if that failed."""
    log.event(messages.KUBERNETES_POD_REMOVE, "Removing pod {pod}", pod=pod.name)
    try:
        await with_deadline(reactor, timeout, pods.delete_pod(pod.namespace, pod.name, 0))
    except (KubernetesError, DeadlineExceeded) as e:
        log.event(
            messages.KUBERNETES_POD_REMOVE_FAILED,
            "Failed to remove pod {pod}: {reason}",
            pod=pod.name,
            reason=e.explanation if isinstance(e, KubernetesError) else str(e),
        )
        return False
    log.event(messages.KUBERNETES_POD_REMOVE_SUCCESSFUL, "Removed pod {pod}", pod=pod.name)
    return True


async def remove_leftovers(
    reactor: Any,
    pods: PodAPI,
    namespaces: Iterable[str],
    instance_id: str,
    *,
    timeout: float,
    log: CodeLogger,
) -> int:
    """Delete every pod labelled with ``instance_id`` in ``namespaces``; how many were removed."""
    found: list[PodRef] = []
    for namespace in sorted(set(namespaces)):
        try:
            listed = await with_deadline(
                reactor, timeout, pods.list_pods(namespace, instance_selector(instance_id))
            )
        except (KubernetesError, DeadlineExceeded) as e:
            log.event(
                messages.KUBERNETES_POD_LIST_FAILED,
                "Cannot list this gateway's pods in {namespace}: {reason}",
                namespace=namespace,
                reason=e.explanation if isinstance(e, KubernetesError) else str(e),
            )
            continue
        found.extend(PodRef(namespace, str(p["metadata"]["name"])) for p in listed)
    if not found:
        return 0
    log.event(
        messages.KUBERNETES_POD_REMOVE,
        "Removing {count} pod(s) left by this gateway",
        count=len(found),
        level=Level.INFO,
    )
    results = await DeferredList(
        [_removal(reactor, pods, pod, timeout, log) for pod in found], consumeErrors=True
    )
    return sum(1 for ok, removed in results if ok and removed)


def _removal(
    reactor: Any, pods: PodAPI, pod: PodRef, timeout: float, log: CodeLogger
) -> Deferred[bool]:
    return Deferred.fromCoroutine(remove_pod(reactor, pods, pod, timeout=timeout, log=log))


def _logged(log: CodeLogger, error: KubernetesError) -> KubernetesError:
    error.log(log)
    return error
