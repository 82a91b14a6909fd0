"""Pods as a ``meta.k8s.io/v1`` Table: what ``kubectl get pods`` prints.

kubectl asks for a Table (``Accept: application/json;as=Table;...``) and
prints its columns as they come; the columns are kubectl's usual ones.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from twisted.web.server import Request

from conch_container.testing.kubeapi.store import Pod

_COLUMNS = [
    ("Name", "string", "name"),
    ("Ready", "string", ""),
    ("Status", "string", ""),
    ("Restarts", "string", ""),
    ("Age", "string", ""),
]


def wants_table(request: Request) -> bool:
    return b"as=Table" in (request.getHeader(b"accept") or b"")


def _age(created: str, now: float) -> str:
    seconds = int(now - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")))
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _status(pod: Pod) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for status in pod["status"]["containerStatuses"]:
        waiting = status["state"].get("waiting")
        if waiting:
            return str(waiting["reason"])
    if pod["status"]["phase"] in ("Succeeded", "Failed"):
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        return str(terminated["reason"])
    return str(pod["status"]["phase"])


def pod_table(pods: list[Pod], resource_version: str, now: float) -> dict[str, Any]:
    rows = []
    for pod in pods:
        statuses = pod["status"]["containerStatuses"]
        ready = sum(1 for s in statuses if s["ready"])
        cells = [
            pod["metadata"]["name"],
            f"{ready}/{len(statuses)}",
            _status(pod),
            "0",
            _age(pod["metadata"]["creationTimestamp"], now),
        ]
        metadata = {k: v for k, v in pod["metadata"].items()}
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": fmt, "description": "", "priority": 0}
            for name, kind, fmt in _COLUMNS
        ],
        "rows": rows,
    }
