"""The gateway's HTTP services: a bounded site, negotiated answers, and the listening service.

A service that answers over HTTP (health, metrics, a test webhook server)
hands :class:`HTTPServerService` its config block and root resource;
resources answer with :func:`answer` to honour ``Accept`` as ContainerSSH does.
"""

from __future__ import annotations

from conch_container.httpserver.negotiate import JSON, TEXT, answer, preferred_type
from conch_container.httpserver.service import HTTPServerService
from conch_container.httpserver.site import BoundedChannel, BoundedRequest, BoundedSite, Limits
from conch_container.httpserver.tls import TLSConfigError, server_tls_options

__all__ = [
    "JSON",
    "TEXT",
    "BoundedChannel",
    "BoundedRequest",
    "BoundedSite",
    "HTTPServerService",
    "Limits",
    "TLSConfigError",
    "answer",
    "preferred_type",
    "server_tls_options",
]
