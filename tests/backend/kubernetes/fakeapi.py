"""A tiny fake of the API server's pod endpoints, on loopback, for :class:`PodAPI` tests.

Enough of ``/api/v1/namespaces/NS/pods`` to create (``generateName``
honoured, 409 on a taken name), get, list by an equality label selector and
delete pods, answering errors with ``Status`` objects as the API server does.
A test can script the ``status`` a pod shows on each read, and make the
server answer garbage.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakePods(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        #: Statuses a pod shows on its next reads, the last one repeated.
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str], Any]] = []
        self.garbage = False
        #: HTTP statuses to answer the next requests with (a Status object each).
        self.fail_next: list[int] = []
        self._counter = 0

    def render(self, request: Request) -> bytes:
        method = request.method.decode()
        path = request.path.decode()
        body = request.content.read() if request.content is not None else b""
        document = json.loads(body) if body else None
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        query = {k.decode(): [v.decode() for v in vs] for k, vs in (request.args or {}).items()}
        self.requests.append((method, path, query, headers, document))
        request.setHeader(b"content-type", b"application/json")
        if self.garbage:
            return b"<html>not json"
        if self.fail_next:
            code = self.fail_next.pop(0)
            return self._answer(request, code, status(code, "InternalError", "try again"))
        parts = path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "pods":
            return self._answer(request, 404, status(404, "NotFound", "no such path"))
        namespace = parts[3]
        name = parts[5] if len(parts) > 5 else ""
        if method == "POST" and not name:
            return self._create(request, namespace, document)
        if method == "GET" and not name:
            return self._list(request, namespace, query.get("labelSelector", [""])[0])
        pod = self.pods.get((namespace, name))
        if pod is None:
            return self._answer(request, 404, status(404, "NotFound", f'pods "{name}" not found'))
        if method == "GET":
            script = self.scripts.get(name)
            if script:
                pod["status"] = script.pop(0) if len(script) > 1 else script[0]
            return self._answer(request, 200, pod)
        if method == "DELETE":
            del self.pods[(namespace, name)]
            return self._answer(request, 200, pod)
        return self._answer(request, 405, status(405, "MethodNotAllowed", method))

    def _create(self, request: Request, namespace: str, pod: Any) -> bytes:
        metadata = pod.setdefault("metadata", {})
        if not metadata.get("name"):
            self._counter += 1
            metadata["name"] = f"{metadata.get('generateName', 'pod-')}{self._counter:05d}"
        name = metadata["name"]
        if (namespace, name) in self.pods:
            return self._answer(
                request, 409, status(409, "AlreadyExists", f'pods "{name}" already exists')
            )
        metadata["namespace"] = namespace
        pod["status"] = {"phase": "Pending"}
        self.pods[(namespace, name)] = pod
        return self._answer(request, 201, pod)

    def _list(self, request: Request, namespace: str, selector: str) -> bytes:
        wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
        items = [
            pod
            for (ns, _), pod in self.pods.items()
            if ns == namespace
            and all(pod["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return self._answer(request, 200, {"kind": "PodList", "items": items})

    @staticmethod
    def _answer(request: Request, code: int, document: Any) -> bytes:
        request.setResponseCode(code)
        return json.dumps(document).encode()


class FakeAPIServer:
    def __init__(self) -> None:
        self.pods = FakePods()
        self._port: IListeningPort | None = None

    def listen(self, tls: Any = None) -> str:
        """Listen on loopback (with ``tls``, a server context factory, over TLS); the base URL."""
        r: Any = reactor
        if tls is None:
            self._port = r.listenTCP(0, Site(self.pods), interface="127.0.0.1")
        else:
            self._port = r.listenSSL(0, Site(self.pods), tls, interface="127.0.0.1")
        assert self._port is not None
        scheme = "https" if tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port.getHost().port}"

    def stop(self) -> Deferred[Any]:
        """Stop listening (again: a no-op)."""
        port, self._port = self._port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)
