"""The control calls on pods, on the backend's own bounded thread pool: :class:`PodAPI`.

Each call is one request through the official client (its TLS and
connection pool), made with :func:`thd_request` in a pool thread: the
client's ``param_serialize`` and ``call_api``, with the body read as plain
JSON (pods stay dicts; the generated models would drop fields they do not
know). Every call first takes a token from the rate limit, and the whole of
it, the wait for a token included, is bounded by the HTTP timeout
(``timeouts.http``): the request's own urllib3 timeout frees the thread, and
a deadline on the reactor's clock frees the caller.

A failed call raises :class:`~.errors.KubernetesError` with the code of what
was being done. Waiting for a pod reads it, then follows its changes with a
watch read on the reactor (:mod:`.podwatch`: the official client would hold a
pool thread for the whole wait), so a change is seen when it happens; where
the watch cannot be opened or ends early, the pod is read again every
:data:`POLL_INTERVAL`. Image pull errors end the wait at once.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from twisted.internet import task
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from conch_container import messages
from conch_container.backend.kubernetes.connection import Cluster
from conch_container.backend.kubernetes.errors import (
    ImagePullFailed,
    KubernetesError,
    status_error,
)
from conch_container.backend.kubernetes.podstatus import (
    container_exit_code,
    image_pull_problem,
    is_ready,
    is_terminated,
)
from conch_container.backend.kubernetes.podwatch import PodWatch, WatchEnded, open_pod_watch
from conch_container.backend.kubernetes.ratelimit import TokenBucket
from conch_container.codes import MessageCode
from conch_container.deferreds import DeadlineExceeded, with_deadline

T = TypeVar("T")

#: The most of an answer's body that is read (a pod list of the gateway's own pods included).
MAX_BODY = 16 * 1024 * 1024
#: How many HTTP timeouts a call may wait for its turn under the rate limit.
TURN_TIMEOUT_FACTOR = 4
#: Seconds between two reads of a pod being waited for when watching it fails.
POLL_INTERVAL = 1.0


class CallFailed(Exception):
    """A request got no usable answer (connection, TLS, timeout, unreadable body).

    :ivar certificate_refused: the API server's certificate failed
        verification: trying again unchanged would fail again.
    """

    def __init__(self, message: str, *, certificate_refused: bool = False) -> None:
        super().__init__(message)
        self.certificate_refused = certificate_refused


def certificate_refused(error: BaseException) -> bool:
    """Whether ``error`` comes from a server certificate that failed verification.

    urllib3 and the official client wrap the :mod:`ssl` module's error
    (``SSLError``, ``MaxRetryError``, ``ApiException``); it is looked for
    along the causes, contexts, reasons and arguments.
    """
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        pending.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))
    return False


def thd_request(
    api_client: ApiClient,
    authorization: str | None,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: object,
    timeout: float,
) -> tuple[int, bytes]:
    """One request to the API server (blocking); the status and the body.

    :raises CallFailed: when no answer came (or it was too large).
    """
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if authorization:
        headers["Authorization"] = authorization
    _, url, headers, body, _ = api_client.param_serialize(
        method=method, resource_path=path, query_params=query, header_params=headers, body=body
    )
    try:
        response = api_client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=timeout
        )
        raw = response.response
        data = raw.read(MAX_BODY + 1, decode_content=True)
        if len(data) > MAX_BODY:
            raw.close()  # the rest is never read: the connection cannot be reused
        else:
            raw.release_conn()
    except ApiException as e:  # the client's way of reporting TLS failures
        raise CallFailed(str(e.reason or e), certificate_refused=certificate_refused(e)) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise CallFailed(
            str(e) or type(e).__name__, certificate_refused=certificate_refused(e)
        ) from e
    if len(data) > MAX_BODY:
        raise CallFailed(f"the answer is larger than {MAX_BODY} bytes")
    return int(response.status), bytes(data)


def _pod_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
    return f"{path}/{quote(name, safe='')}" if name else path


class PodAPI:
    """Pods on one API server, used from the reactor.

    :param reactor: the reactor results are delivered on (and its clock).
    :param pool: the backend's own bounded thread pool; every request runs there.
    :param cluster: the official client and its settings.
    :param limiter: the rate limit (``qps``/``burst``) shared by the backend's calls.
    :param poll_interval: seconds between two reads of a pod being waited for
        when it cannot be watched.
    :param watch: whether waits watch the pod (else they only poll).
    """

    def __init__(
        self,
        reactor: Any,
        pool: ThreadPool,
        cluster: Cluster,
        limiter: TokenBucket,
        *,
        poll_interval: float = POLL_INTERVAL,
        watch: bool = True,
    ) -> None:
        self._reactor = reactor
        self._pool = pool
        self._cluster = cluster
        self._limiter = limiter
        self._timeout = cluster.settings.timeout
        self._poll_interval = poll_interval
        self._watch = watch

    async def _call(
        self,
        code: MessageCode,
        what: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: object = None,
        accept: Callable[[int], bool] = lambda status: False,
    ) -> tuple[int, Any]:
        """One control call within the HTTP timeout; the status and the decoded JSON.

        The call first waits for its turn under the rate limit (as client-go's
        limiter waits within the request's context, not its timeout), within
        :data:`TURN_TIMEOUT_FACTOR` times the HTTP timeout; the request itself,
        its wait for a pool thread included, then has the HTTP timeout. A
        request still queued for a thread when its caller gives up is never
        sent: a pod created after the gateway stopped waiting would be nobody's.
        A status outside 2xx is an error unless ``accept`` takes it.
        """
        timeout = self._timeout
        turn = timeout * TURN_TIMEOUT_FACTOR
        try:
            await with_deadline(self._reactor, turn, self._limiter.acquire())
        except DeadlineExceeded:
            raise KubernetesError(
                code, f"{what}: no turn within {turn:g} s under the rate limit (qps, burst)"
            ) from None
        given_up = False

        def thd_call() -> tuple[int, bytes]:
            if given_up:
                raise CallFailed("given up before it was sent")
            return thd_request(
                self._cluster.api_client,
                self._cluster.settings.credentials.authorization(),
                method,
                path,
                list((query or {}).items()),
                body,
                timeout,
            )

        try:
            status, data = await with_deadline(
                self._reactor, timeout, deferToThreadPool(self._reactor, self._pool, thd_call)
            )
        except DeadlineExceeded:
            raise KubernetesError(code, f"{what}: no answer within {timeout:g} s") from None
        except CallFailed as e:
            raise KubernetesError(
                code, f"{what}: {e}", certificate_refused=e.certificate_refused
            ) from None
        finally:
            # Read by the pool thread; a plain assignment is atomic.
            given_up = True
        if not 200 <= status < 300 and not accept(status):
            raise status_error(code, status, data, what)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            raise KubernetesError(code, f"{what}: the answer is not JSON", status=status) from None

    async def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``pod`` in ``namespace``; the pod as the server stored it (with its name)."""
        _, created = await self._call(
            messages.KUBERNETES_POD_CREATE_FAILED,
            "creating the pod",
            "POST",
            _pod_path(namespace),
            body=dict(pod),
        )
        return _object(created, messages.KUBERNETES_POD_CREATE_FAILED, "creating the pod")

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod, or None if there is no such pod."""
        status, pod = await self._call(
            messages.KUBERNETES_POD_WAIT_FAILED,
            f"reading pod {name}",
            "GET",
            _pod_path(namespace, name),
            accept=lambda s: s == 404,
        )
        if status == 404:
            return None
        return _object(pod, messages.KUBERNETES_POD_WAIT_FAILED, f"reading pod {name}")

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The pods in ``namespace`` matching ``label_selector`` (``key=value,...``)."""
        what = f"listing pods with {label_selector}"
        _, found = await self._call(
            messages.KUBERNETES_POD_LIST_FAILED,
            what,
            "GET",
            _pod_path(namespace),
            query={"labelSelector": label_selector},
        )
        items = _object(found, messages.KUBERNETES_POD_LIST_FAILED, what).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> bool:
        """Delete the pod (its containers get ``grace_seconds`` to end); False if it was gone."""
        status, _ = await self._call(
            messages.KUBERNETES_POD_REMOVE_FAILED,
            f"removing pod {name}",
            "DELETE",
            _pod_path(namespace, name),
            body={
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": max(0, grace_seconds),
            },
            accept=lambda s: s == 404,
        )
        return status != 404

    async def wait_until_ready(self, namespace: str, name: str, timeout: float) -> dict[str, Any]:
        """Wait until the pod runs and is Ready, or has ended (Succeeded or Failed).

        :raises ImagePullFailed: at once when a container's image cannot be pulled.
        :raises KubernetesError: ``KUBERNETES_POD_WAIT_FAILED`` when the pod is
            gone, a read is refused, or ``timeout`` passes first (reads that get
            no answer, 429 or a server error are repeated until then).
        """
        return await self._wait(
            namespace,
            name,
            timeout,
            is_ready,
            messages.KUBERNETES_POD_WAIT_FAILED,
            "for it to be ready",
        )

    async def wait_until_terminated(
        self, namespace: str, name: str, container: str, timeout: float
    ) -> int:
        """Wait until ``container`` of the pod has terminated; its exit code.

        :raises KubernetesError: ``KUBERNETES_EXIT_CODE_FAILED`` when the pod is
            gone (``not_found``), a read is refused, or ``timeout`` passes first
            (reads are repeated as for :meth:`wait_until_ready`).
        """
        pod = await self._wait(
            namespace,
            name,
            timeout,
            lambda p: is_terminated(p, container),
            messages.KUBERNETES_EXIT_CODE_FAILED,
            f"for container {container} to end",
        )
        code = container_exit_code(pod, container)
        assert code is not None  # is_terminated said so
        return code

    async def _open_watch(
        self, namespace: str, name: str, version: str, left: float, code: MessageCode
    ) -> PodWatch:
        """A watch of the pod after ``version``, lasting at most ``left`` seconds.

        :raises KubernetesError: refused, or no answer within the HTTP timeout.
        """
        await self._limiter.acquire()
        try:
            return await with_deadline(
                self._reactor,
                self._timeout,
                open_pod_watch(
                    self._reactor,
                    self._cluster.settings,
                    _pod_path(namespace),
                    name,
                    version,
                    timeout_seconds=int(left) + 1,
                    code=code,
                ),
            )
        except DeadlineExceeded:
            raise KubernetesError(
                code, f"watching pod {name}: no answer within {self._timeout:g} s"
            ) from None
        except KubernetesError:
            raise
        except Exception as e:  # connection refused, TLS, a broken answer
            raise KubernetesError(code, f"watching pod {name}: {e or type(e).__name__}") from None

    async def _wait(
        self,
        namespace: str,
        name: str,
        timeout: float,
        done: Callable[[dict[str, Any]], bool],
        code: MessageCode,
        what: str,
    ) -> dict[str, Any]:
        last_error: KubernetesError | None = None
        watching = self._watch
        started = self._reactor.seconds()

        async def read() -> dict[str, Any] | None:
            nonlocal last_error
            try:
                return await self.get_pod(namespace, name)
            except KubernetesError as e:
                if not _transient(e):
                    raise KubernetesError(
                        code, e.explanation, status=e.status, reason=e.reason
                    ) from None
                last_error = e  # the API server may recover within the wait
                return {}

        async def next_state(
            pod: dict[str, Any], watch: PodWatch | None
        ) -> tuple[dict[str, Any] | None, PodWatch | None]:
            """The pod's next state: from the watch, or read again after a pause."""
            nonlocal watching, last_error
            version = str(pod.get("metadata", {}).get("resourceVersion") or "")
            if watching and version:
                try:
                    if watch is None:
                        left = timeout - (self._reactor.seconds() - started)
                        watch = await self._open_watch(namespace, name, version, left, code)
                    return await watch.next(), watch
                except WatchEnded:
                    watch = None
                except KubernetesError as e:
                    # Refused (no "watch" permission, say): poll for the rest of the wait.
                    last_error = e
                    watching = _transient(e)
                    watch = None
            await task.deferLater(self._reactor, self._poll_interval)
            return await read(), None

        async def poll() -> dict[str, Any]:
            watch: PodWatch | None = None
            try:
                pod = await read()
                while True:
                    if pod is None:
                        raise KubernetesError(
                            code, f"pod {name} is gone", status=404, reason="NotFound"
                        )
                    if pod and done(pod):
                        return pod
                    problem = image_pull_problem(pod)
                    if problem is not None:
                        raise ImagePullFailed(f"pod {name}: {problem}", pod=name)
                    pod, watch = await next_state(pod, watch)
            finally:
                if watch is not None:
                    watch.close()

        try:
            return await with_deadline(self._reactor, timeout, poll())
        except DeadlineExceeded:
            explanation = f"gave up waiting {what} after {timeout:g} s"
            if last_error is not None:
                explanation += f"; the last call failed: {last_error.explanation}"
            raise KubernetesError(code, f"pod {name}: {explanation}") from None


def _transient(error: KubernetesError) -> bool:
    """Whether a failed read is worth repeating: no answer, throttled, or a server error."""
    return error.status is None or error.status == 429 or error.status >= 500


def _object(value: Any, code: MessageCode, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KubernetesError(code, f"{what}: the answer is not a JSON object")
    return value
