"""The HTTP face of the server: authentication, routing, the pod calls.

Paths served (everything else is 404 ``NotFound``):

- ``/version``, ``/healthz``, ``/livez``, ``/readyz``: without a token too,
  as a cluster serves them to anyone;
- discovery: ``/api``, ``/apis``, ``/api/v1``, ``/openapi/v3``, ``/openapi/v3/api/v1``;
- ``/api/v1/pods`` (list, watch across namespaces);
- ``/api/v1/namespaces/NS/pods`` (list, watch, create) and ``.../pods/NAME``
  (get, delete), ``.../pods/NAME/exec`` and ``.../attach`` (WebSocket).

Every other call needs ``Authorization: Bearer TOKEN``; a missing or wrong
token is ``401 Unauthorized``.
"""

from __future__ import annotations

import hmac
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from conch_container import messages
from conch_container.log import CodeLogger
from conch_container.testing.kubeapi import discovery, podspec, podstatus
from conch_container.testing.kubeapi.runtime import DockerPods
from conch_container.testing.kubeapi.selectors import field_matcher, label_matcher
from conch_container.testing.kubeapi.status import (
    ApiError,
    already_exists,
    bad_request,
    failure,
    not_found,
    unauthorized,
)
from conch_container.testing.kubeapi.store import Pod, PodStore
from conch_container.testing.kubeapi.streams import StreamTarget, factory
from conch_container.testing.kubeapi.table import pod_table, wants_table
from conch_container.testing.kubeapi.watch import Watch, watch_timeout

_PUBLIC = {"/version", "/healthz", "/livez", "/readyz"}
_GENERATED_SUFFIX = 5


class KubeAPIResource(Resource):
    """The whole API: one leaf resource that routes on the path itself.

    :param token: the bearer token every client must present.
    :param host: ``HOST:PORT`` as clients reach the server (for ``/api``).
    """

    isLeaf = True

    def __init__(
        self, store: PodStore, pods: DockerPods, token: str, host: str, clock: Any, log: CodeLogger
    ) -> None:
        super().__init__()
        self._store = store
        self._pods = pods
        self._token = token.encode("utf-8")
        self.host = host
        self._clock = clock
        self._log = log

    def render(self, request: Request) -> bytes | int:
        path = urlsplit(request.uri.decode("latin-1")).path.rstrip("/") or "/"
        try:
            self._authenticate(request, path)
            return self._route(request, path)
        except ApiError as e:
            self._log.event(
                messages.KUBEAPI_REQUEST_REFUSED,
                "{method} {path}: {status} {reason}",
                method=request.method.decode("latin-1"),
                path=path,
                status=e.code,
                reason=e.status["reason"],
            )
            return _json(request, e.status, e.code)
        except Exception:
            self._log.failure(messages.KUBEAPI_FAILED, "Answering {path} failed", path=path)
            return _json(request, failure(500, "InternalError", "internal error"), 500)

    def _authenticate(self, request: Request, path: str) -> None:
        header = request.getHeader(b"authorization")
        if header is None and path in _PUBLIC:
            return
        scheme, _, token = (header or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
            raise unauthorized()

    def _route(self, request: Request, path: str) -> bytes | int:
        method = request.method
        if path in _FIXED and method == b"GET":
            document = _FIXED[path] if path != "/api" else discovery.api_versions(self.host)
            return _json(request, document)
        if path in ("/healthz", "/livez", "/readyz") and method == b"GET":
            request.setHeader(b"content-type", b"text/plain")
            return b"ok"
        parts = path.strip("/").split("/")
        if parts == ["api", "v1", "pods"] and method == b"GET":
            return self._list(request, None)
        if len(parts) < 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace, rest = parts[3], parts[5:]
        if not rest:
            if method == b"GET":
                return self._list(request, namespace)
            if method == b"POST":
                return self._create(request, namespace)
        elif len(rest) == 1:
            if method == b"GET":
                return self._get(request, namespace, rest[0])
            if method == b"DELETE":
                return self._delete(request, namespace, rest[0])
        elif len(rest) == 2 and rest[1] in ("exec", "attach") and method in (b"GET", b"POST"):
            return self._stream(request, namespace, rest[0], rest[1])
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _pod(self, namespace: str, name: str) -> Pod:
        pod = self._store.get(namespace, name)
        if pod is None:
            raise not_found(name)
        return pod

    def _get(self, request: Request, namespace: str, name: str) -> bytes:
        pod = self._pod(namespace, name)
        if wants_table(request):
            return _json(
                request, pod_table([pod], self._store.resource_version, self._clock.seconds())
            )
        return _json(request, pod)

    def _list(self, request: Request, namespace: str | None) -> bytes | int:
        args = _args(request)
        labels = label_matcher(args.get("labelSelector", ""))
        fields = field_matcher(args.get("fieldSelector", ""))

        def matches(pod: Any) -> bool:
            return labels(pod) and fields(pod)

        if args.get("watch") in ("true", "1"):
            version = args.get("resourceVersion", "")
            if version in ("", "0"):
                backlog = [("ADDED", pod) for pod in self._store.matching(namespace, matches)]
            else:
                backlog = self._store.since(version)
            Watch(
                request,
                self._store,
                namespace,
                matches,
                backlog,
                watch_timeout(args.get("timeoutSeconds")),
                self._clock,
            )
            return NOT_DONE_YET
        pods = self._store.matching(namespace, matches)
        if wants_table(request):
            return _json(
                request, pod_table(pods, self._store.resource_version, self._clock.seconds())
            )
        for pod in pods:
            del pod["kind"], pod["apiVersion"]
        return _json(
            request,
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": self._store.resource_version},
                "items": pods,
            },
        )

    def _create(self, request: Request, namespace: str) -> bytes:
        try:
            pod = json.loads(request.content.read() if request.content else b"")
        except ValueError as e:
            raise bad_request(f"the body of the request was in an unknown format: {e}") from None
        if (
            not isinstance(pod, dict)
            or pod.get("kind", "Pod") != "Pod"
            or pod.get("apiVersion", "v1") != "v1"
        ):
            raise bad_request("the body must be a v1 Pod")
        podspec.validate(pod)
        metadata = dict(pod.get("metadata") or {})
        if metadata.get("namespace", namespace) != namespace:
            raise bad_request(
                "the namespace of the provided object does not match "
                "the namespace sent on the request"
            )
        if not metadata.get("name"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:_GENERATED_SUFFIX]
        if self._store.get(namespace, metadata["name"]) is not None:
            raise already_exists(metadata["name"])
        now = self._clock.seconds()
        metadata.update(
            namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=podstatus.timestamp(now)
        )
        metadata.pop("resourceVersion", None)
        stored: Pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": podspec.with_defaults(pod["spec"]),
        }
        podstatus.initial_status(stored, now)
        snapshot = self._store.add(stored)
        self._pods.start(stored)
        return _json(request, snapshot, 201)

    def _delete(self, request: Request, namespace: str, name: str) -> bytes:
        pod = self._pod(namespace, name)
        grace = _grace(request, pod)
        if not pod["metadata"].get("deletionTimestamp"):
            now = self._clock.seconds()
            pod["metadata"]["deletionTimestamp"] = podstatus.timestamp(now + grace)
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            snapshot = self._store.changed(pod)
            self._pods.delete_later(pod, grace)
        else:
            snapshot = self._store.matching(namespace, lambda p: p["metadata"]["name"] == name)[0]
        return _json(request, snapshot)

    def _stream(self, request: Request, namespace: str, name: str, kind: str) -> bytes | int:
        pod = self._pod(namespace, name)
        args = _args(request)
        multi = parse_qs(urlsplit(request.uri.decode("latin-1")).query).get("command", [])
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = args.get("container") or names[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        state = podstatus.container_status(pod, container)["state"]
        container_id = self._pods.container_id(pod, container)
        if "running" not in state or container_id is None:
            raise bad_request(f"container {container} is not running in pod {name}")
        if kind == "exec" and not multi:
            raise bad_request("you must specify at least 1 command")
        if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            raise bad_request("Upgrade request required")
        target = StreamTarget(
            pods=self._pods,
            container_id=container_id,
            command=multi if kind == "exec" else None,
            stdin=_flag(args, "stdin"),
            stdout=_flag(args, "stdout"),
            stderr=_flag(args, "stderr"),
            tty=_flag(args, "tty"),
            log=self._log,
        )
        channel = request.channel
        channel.setTimeout(None)  # the WebSocket has its own pings
        sites_channels = getattr(getattr(channel, "site", None), "channels", None)
        if sites_channels is not None:
            sites_channels.discard(channel)  # the connection is the WebSocket's from now on
        result: bytes | int = WebSocketResource(factory(target)).render(request)
        return result


_FIXED: dict[str, Any] = {
    "/version": discovery.VERSION,
    "/api": None,
    "/apis": discovery.API_GROUPS,
    "/api/v1": discovery.CORE_RESOURCES,
    "/openapi/v3": discovery.OPENAPI_ROOT,
    "/openapi/v3/api/v1": discovery.OPENAPI_CORE,
}


def _json(request: Request, document: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(document).encode("utf-8")


def _args(request: Request) -> dict[str, str]:
    """The query's parameters, the first value of each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(request.uri.decode("latin-1")).query).items()}


def _flag(args: dict[str, str], name: str) -> bool:
    return args.get(name, "").lower() in ("true", "1")


def _grace(request: Request, pod: Pod) -> int:
    """The deletion's grace period: the query's, the body's, or the pod's own."""
    args = _args(request)
    grace: Any = args.get("gracePeriodSeconds")
    if grace is None and request.content is not None:
        try:
            body = json.loads(request.content.read() or b"{}")
        except ValueError:
            raise bad_request("the body of the request was in an unknown format") from None
        grace = body.get("gracePeriodSeconds") if isinstance(body, dict) else None
    if grace is None:
        grace = pod["spec"]["terminationGracePeriodSeconds"]
    try:
        return max(int(grace), 0)
    except (TypeError, ValueError):
        raise bad_request(f"invalid gracePeriodSeconds: {grace!r}") from None
