"""The backend's one entry to its clusters: :class:`KubernetesClient`.

It owns the bounded thread pool every control call runs on (named
``kubernetes``, started in :meth:`~KubernetesClient.start`, joined in
:meth:`~KubernetesClient.stop`) and a :class:`ClusterClient` per distinct
connection setting: the configuration may differ per user once the config
webhook is in use, and each distinct API server gets its own official client,
rate limit (``qps``/``burst``, as client-go keeps one per ``rest.Config``)
and TLS files.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.backend.kubernetes.channels import exec_path
from conch_container.backend.kubernetes.connection import (
    SERVICE_ACCOUNT_DIR,
    Cluster,
    ClusterSettings,
    thd_api_client,
)
from conch_container.backend.kubernetes.errors import KubernetesError
from conch_container.backend.kubernetes.pods import PodAPI
from conch_container.backend.kubernetes.ratelimit import TokenBucket
from conch_container.backend.kubernetes.sources import thd_resolve
from conch_container.backend.kubernetes.streamopen import open_channel_stream
from conch_container.backend.kubernetes.websocket import (
    ChannelStream,
    Sink,
    StreamEvents,
)
from conch_container.config.kubernetes import KubernetesConfig, KubernetesConnectionConfig
from conch_container.deferreds import Once


@attrs.frozen
class _ClusterKey:
    connection: KubernetesConnectionConfig
    http_timeout: float


class ClusterClient:
    """One API server: its control calls (:attr:`pods`) and its streams.

    :ivar settings: the resolved connection (namespace suggestion included).
    :ivar pods: the pod control calls.
    """

    def __init__(self, reactor: Any, cluster: Cluster, pods: PodAPI) -> None:
        self._reactor = reactor
        self.cluster = cluster
        self.settings: ClusterSettings = cluster.settings
        self.pods = pods

    async def open_stream(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: list[str] | None,
        *,
        tty: bool,
        stdout: Sink,
        stderr: Sink,
        events: StreamEvents,
        expect_pid: bool = False,
        timeout: float | None = None,
    ) -> ChannelStream:
        """Exec ``command`` in ``container`` (or, with ``command`` None, attach to
        its main process, as session mode does), with stdin, stdout and stderr.

        :raises KubernetesError: ``KUBERNETES_EXEC_FAILED`` if it cannot be opened.
        """
        path = exec_path(namespace, pod, container, command, tty=tty)
        return await open_channel_stream(
            self._reactor,
            self.settings,
            path,
            stdout=stdout,
            stderr=stderr,
            events=events,
            tty=tty,
            expect_pid=expect_pid,
            timeout=timeout,
        )


class KubernetesClient:
    """The backend's thread pool and its clients, one per distinct API connection.

    :param reactor: the reactor (and clock) everything runs on.
    :param max_threads: the pool's size: the most control calls in flight.
    :param environ: the environment in-cluster discovery reads (``os.environ`` if None).
    :param service_account_dir: where in-cluster discovery finds the service account.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        max_threads: int = 10,
        environ: Mapping[str, str] | None = None,
        service_account_dir: str = SERVICE_ACCOUNT_DIR,
    ) -> None:
        self._reactor = reactor
        self._max_threads = max_threads
        self._environ = environ
        self._service_account_dir = service_account_dir
        self._pool = ThreadPool(minthreads=0, maxthreads=max_threads, name="kubernetes")
        self._clusters: dict[_ClusterKey, Once[ClusterClient]] = {}
        self._tls_root: str | None = None
        self._running = False

    def start(self) -> None:
        """Start the pool; call once before :meth:`cluster_for`."""
        if self._running:
            return
        self._tls_root = tempfile.mkdtemp(prefix="conch-container-kubernetes-")
        self._pool.start()
        self._running = True

    def cluster_for(self, config: KubernetesConfig) -> Deferred[ClusterClient]:
        """The (cached) client of ``config``'s API server; a failed attempt is not cached.

        :raises KubernetesError: (through the Deferred) ``KUBERNETES_CONFIG_ERROR``
            naming the key when the connection settings cannot be used.
        """
        key = _ClusterKey(config.connection, float(config.timeouts.http))
        once = self._clusters.get(key)
        if once is None:
            once = Once()
            self._clusters[key] = once

            def failed(failure: Any) -> Any:
                if self._clusters.get(key) is once:
                    del self._clusters[key]
                return failure

            d = Deferred.fromCoroutine(self._connect(config))
            d.addErrback(failed).addBoth(once.fire)
        return once.wait()

    async def _connect(self, config: KubernetesConfig) -> ClusterClient:
        if not self._running:
            raise KubernetesError(
                messages.KUBERNETES_CONFIG_ERROR, "the Kubernetes backend is not running"
            )
        settings: ClusterSettings = await deferToThreadPool(
            self._reactor,
            self._pool,
            thd_resolve,
            config,
            environ=self._environ,
            service_account_dir=self._service_account_dir,
        )
        cluster: Cluster = await deferToThreadPool(
            self._reactor,
            self._pool,
            thd_api_client,
            settings,
            self._tls_root,
            self._max_threads,
        )
        limiter = TokenBucket(self._reactor, settings.qps, settings.burst)
        return ClusterClient(
            self._reactor, cluster, PodAPI(self._reactor, self._pool, cluster, limiter)
        )

    async def stop(self) -> None:
        """Release every client (and its TLS files) and join the pool; idempotent."""
        if not self._running:
            return
        self._running = False
        clusters, self._clusters = self._clusters, {}
        waits = [once.wait() for once in clusters.values()]
        results = await DeferredList(waits, consumeErrors=True)
        for ok, client in results:
            if ok:
                await deferToThreadPool(self._reactor, self._pool, client.cluster.thd_close)
        # Joining the pool's threads blocks until their calls return, so it is
        # done from a thread of the reactor's own pool.
        await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._pool.stop)
        if self._tls_root is not None:
            shutil.rmtree(self._tls_root, ignore_errors=True)
            self._tls_root = None
