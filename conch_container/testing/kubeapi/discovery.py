"""Discovery documents: what kubectl and the clients read before their first call.

kubectl asks for aggregated discovery first; a plain ``application/json``
answer makes it fall back to the legacy documents served here (``/api``,
``/apis``, ``/api/v1``). Before ``create`` it checks in the OpenAPI v3
document that the server validates fields itself (the ``fieldValidation``
parameter of the pod ``PATCH``); the smallest document that says so is
served, since the server refuses fields it does not support on its own.
"""

from __future__ import annotations

from typing import Any

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+conch-container-test",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

API_GROUPS: dict[str, Any] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}

CORE_RESOURCES: dict[str, Any] = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "pods",
            "singularName": "pod",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["create", "delete", "get", "list", "watch"],
            "shortNames": ["po"],
            "categories": ["all"],
        },
        {
            "name": "pods/attach",
            "singularName": "",
            "namespaced": True,
            "kind": "PodAttachOptions",
            "verbs": ["create", "get"],
        },
        {
            "name": "pods/exec",
            "singularName": "",
            "namespaced": True,
            "kind": "PodExecOptions",
            "verbs": ["create", "get"],
        },
    ],
}

OPENAPI_ROOT = {
    "paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=conch-container"}}
}

_GVK = {"group": "", "version": "v1", "kind": "Pod"}
OPENAPI_CORE: dict[str, Any] = {
    "openapi": "3.0.0",
    "info": {"title": "Kubernetes", "version": "v1.32.0"},
    "paths": {
        "/api/v1/namespaces/{namespace}/pods/{name}": {
            "patch": {
                "operationId": "patchCoreV1NamespacedPod",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": _GVK,
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "schema": {"type": "string", "uniqueItems": True},
                    },
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    },
    "components": {"schemas": {}},
}


def api_versions(host: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }
