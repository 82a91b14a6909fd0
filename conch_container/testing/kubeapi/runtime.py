"""Pods as Docker containers: create, watch to the end, stop, remove.

One Docker container per pod container, created from an image the engine
already has (there is no registry pull: a missing image is
``ErrImagePull``, then ``ImagePullBackOff``, as a cluster reports an image
it cannot pull). Each container carries the server's label, so everything a
server made is found and removed when it stops.

A container's end is seen without a thread: before its start the server
attaches to its output (no stdin) through the engine's HTTP upgrade, and the
engine ends that stream when the container stops; its exit code is then
inspected. Every Docker control call runs on the engine's bounded pool.
"""

from __future__ import annotations

from typing import Any, cast

import docker
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.backend.docker.containerconfig import CreateRequest
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.errors import EngineError, engine_errors
from conch_container.backend.docker.engine.upgrade import EngineStreams
from conch_container.log import CodeLogger
from conch_container.testing.kubeapi import podstatus
from conch_container.testing.kubeapi.podspec import docker_body, pod_hostname
from conch_container.testing.kubeapi.store import Pod, PodStore

#: The label on every container a server makes; its value is the server's id.
LABEL_SERVER = "conch_container_kubeapi"
LABEL_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD = "io.kubernetes.pod.name"
LABEL_CONTAINER = "io.kubernetes.container.name"
LABEL_UID = "io.kubernetes.pod.uid"

#: Seconds from ``ErrImagePull`` to ``ImagePullBackOff``, as the kubelet backs off.
PULL_BACKOFF = 1.0
#: Seconds a stopping server waits for the pod starts under way.
CLOSE_START_WAIT = 30.0


@engine_errors
def thd_api_version(client: docker.APIClient) -> str:
    return str(client.api_version)


class _EndWatcher(Protocol):
    """Discards a container's output; fires :attr:`ended` when the engine ends the stream."""

    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.ended.called:
            self.ended.callback(None)


class DockerPods:
    """Runs the pods of ``store`` in the engine.

    :param instance: the value of :data:`LABEL_SERVER` on this server's containers.
    """

    def __init__(
        self, reactor: Any, engine: Engine, store: PodStore, instance: str, log: CodeLogger
    ) -> None:
        self._reactor = reactor
        self.engine = engine
        self._store = store
        self.instance = instance
        self._log = log
        self._streams = EngineStreams(reactor, engine.settings)
        self._version: str | None = None
        #: Docker container ids by pod uid and container name.
        self._containers: dict[str, dict[str, str]] = {}
        self._running: set[Deferred[None]] = set()
        #: Pod starts under way: close() lets them finish rather than cancel
        #: them, as an engine call cancelled here still completes in the engine.
        self._starting: set[Deferred[None]] = set()
        #: The attach streams that tell a container's end, until each ends.
        self._watchers: set[_EndWatcher] = set()
        self._closing = False

    @property
    def reactor(self) -> Any:
        """The reactor the server runs on."""
        return self._reactor

    def container_id(self, pod: Pod, container: str) -> str | None:
        return self._containers.get(pod["metadata"]["uid"], {}).get(container)

    def start(self, pod: Pod) -> None:
        """Create and start the pod's containers in the background."""
        d = Deferred.fromCoroutine(self._start(pod))
        self._starting.add(d)
        self._track(d)
        d.addBoth(lambda _: self._starting.discard(d))

    def _track(self, d: Deferred[None]) -> None:
        self._running.add(d)
        d.addErrback(self._background_failed)
        d.addBoth(lambda _: self._running.discard(d))

    def _background_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self._log.failure(messages.KUBEAPI_FAILED, "A pod's background work failed", failure)

    async def _start(self, pod: Pod) -> None:
        for container in pod["spec"]["containers"]:
            if not await self._start_container(pod, container):
                return
        if self._store.get(pod["metadata"]["namespace"], pod["metadata"]["name"]) is pod:
            self._changed(pod)

    async def _start_container(self, pod: Pod, container: dict[str, Any]) -> bool:
        name = container["name"]
        try:
            if not await self.engine.image_present(container["image"]):
                self._image_missing(pod, name, container["image"])
                return False
            if self._version is None:
                self._version = await self.engine.run(thd_api_version)
            labels = {
                LABEL_SERVER: self.instance,
                LABEL_NAMESPACE: pod["metadata"]["namespace"],
                LABEL_POD: pod["metadata"]["name"],
                LABEL_CONTAINER: name,
                LABEL_UID: pod["metadata"]["uid"],
            }
            request = CreateRequest(
                docker_body(container, labels, pod_hostname(pod)), None, None, container["image"]
            )
            container_id = await self.engine.create_container(request)
            self._containers.setdefault(pod["metadata"]["uid"], {})[name] = container_id
            if pod["metadata"].get("deletionTimestamp") or self._closing:
                # Deleted (or the server stopping) while this was being created:
                # the deletion, or the stop's sweep, may be over already.
                await self._remove(container_id, 0)
                return False
            watcher = _EndWatcher()
            stream = await self._streams.open(
                f"/v{self._version}/containers/{container_id}/attach",
                params={"stream": "1", "stdout": "1", "stderr": "1"},
            )
            stream.attach(watcher)
            self._watch(watcher)
            await self.engine.start_container(container_id)
        except EngineError as e:
            self._log.event(
                messages.KUBEAPI_ENGINE_FAILED,
                "Starting container {container} of pod {namespace}/{pod} failed: {reason}",
                container=name,
                namespace=pod["metadata"]["namespace"],
                pod=pod["metadata"]["name"],
                reason=str(e),
            )
            podstatus.set_waiting(pod, name, "CreateContainerError", str(e))
            self._changed(pod)
            return False
        podstatus.set_running(pod, name, container_id, container["image"], self._reactor.seconds())
        watcher.ended.addCallback(lambda _: self._container_ended(pod, name, container_id))
        return True

    def _watch(self, watcher: _EndWatcher) -> None:
        self._watchers.add(watcher)
        watcher.ended.addCallback(lambda _: self._watchers.discard(watcher))

    def _container_ended(self, pod: Pod, name: str, container_id: str) -> None:
        if not self._closing:
            self._track(Deferred.fromCoroutine(self._ended(pod, name, container_id)))

    def _image_missing(self, pod: Pod, name: str, image: str) -> None:
        message = f'Failed to pull image "{image}": not present in the local Docker engine'
        podstatus.set_waiting(pod, name, "ErrImagePull", message)
        self._changed(pod)

        def back_off() -> None:
            if self._store.get(pod["metadata"]["namespace"], pod["metadata"]["name"]) is pod:
                podstatus.set_waiting(
                    pod, name, "ImagePullBackOff", f'Back-off pulling image "{image}"'
                )
                self._changed(pod)

        # Tracked, so that close() cancels a back-off still pending.
        self._track(deferLater(self._reactor, PULL_BACKOFF, back_off))

    async def _ended(self, pod: Pod, name: str, container_id: str) -> None:
        try:
            state = await self.engine.container_state(container_id)
            exit_code = int(state.get("ExitCode", -1))
            reason = "OOMKilled" if state.get("OOMKilled") else None
        except EngineError:
            exit_code, reason = 137, "ContainerCannotRun"  # removed under us
        if self._store.get(pod["metadata"]["namespace"], pod["metadata"]["name"]) is not pod:
            return
        podstatus.set_terminated(pod, name, exit_code, self._reactor.seconds(), reason)
        self._changed(pod)

    def _changed(self, pod: Pod) -> None:
        before = pod["status"]["phase"]
        podstatus.refresh(pod, self._reactor.seconds())
        self._store.changed(pod)
        if pod["status"]["phase"] != before:
            self._log.event(
                messages.KUBEAPI_POD_CHANGED,
                "Pod {namespace}/{pod} is {phase}",
                namespace=pod["metadata"]["namespace"],
                pod=pod["metadata"]["name"],
                phase=pod["status"]["phase"],
            )

    async def delete(self, pod: Pod, grace: int) -> None:
        """Stop the pod's containers (``KILL`` after ``grace`` s), remove them, forget the pod."""
        ids = list(self._containers.get(pod["metadata"]["uid"], {}).values())
        for container_id in ids:
            await self._remove(container_id, grace)
        self._containers.pop(pod["metadata"]["uid"], None)
        self._store.remove(pod)
        self._log.event(
            messages.KUBEAPI_POD_CHANGED,
            "Pod {namespace}/{pod} is deleted",
            namespace=pod["metadata"]["namespace"],
            pod=pod["metadata"]["name"],
            phase="Deleted",
        )

    def delete_later(self, pod: Pod, grace: int) -> None:
        self._track(Deferred.fromCoroutine(self.delete(pod, grace)))

    async def close(self) -> None:
        """Remove every container this server made, running or not, and drop
        the streams that watched them: nothing of the server's stays open."""
        self._closing = True
        starting = list(self._starting)
        for d in list(self._running):
            if d not in self._starting:
                d.cancel()
        # A create the engine is carrying out would leave its container behind
        # a sweep that ran first: the starts end (they remove what they made
        # once they see the stop) before the sweep.
        if starting:
            waited = DeferredList(starting, consumeErrors=True)
            timer = self._reactor.callLater(CLOSE_START_WAIT, waited.cancel)
            try:
                await waited
            except CancelledError:
                for d in starting:
                    d.cancel()
            finally:
                if timer.active():
                    timer.cancel()
        for container_id in await self.engine.list_labelled(LABEL_SERVER, self.instance):
            await self._remove(container_id, 0)
        # The engine ends these streams itself once their containers are gone,
        # but on its own time; a stream cancelled mid-start may never end.
        watchers = list(self._watchers)
        for watcher in watchers:
            if watcher.transport is not None:
                # A Unix or TCP connection to the engine: both can abort.
                cast(Any, watcher.transport).abortConnection()
        for watcher in watchers:
            await watcher.ended

    async def _remove(self, container_id: str, grace: int) -> None:
        """Stop (``KILL`` after ``grace`` s; at once for 0) and remove one container."""
        try:
            if grace > 0:
                await self.engine.container_stop(container_id, grace)
            await self.engine.remove_container(container_id)
        except EngineError as e:
            self._log.event(
                messages.KUBEAPI_ENGINE_FAILED,
                "Removing container {container_id} failed: {reason}",
                container_id=container_id,
                reason=str(e),
            )
