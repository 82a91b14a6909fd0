"""The health endpoint: ``ok`` while every service of the gateway runs, ``not ok`` otherwise.

As ContainerSSH's: any path and any method, status 200 with ``ok`` or 503
with ``not ok``, the body as JSON (``"ok"``) when the client asks for
``application/json`` and as plain text otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from conch_container.httpserver import answer
from conch_container.log import CodeLogger

__all__ = ["HealthResource"]


class HealthResource(Resource):
    """Answers whether the gateway is healthy, as ``healthy()`` says at each request.

    :param healthy: asked at every request; for the gateway,
        :meth:`~conch_container.service.GatewayService.all_running`.
    :param log: where an answer that cannot be encoded is reported.
    """

    isLeaf = True

    def __init__(self, healthy: Callable[[], bool], log: CodeLogger) -> None:
        super().__init__()
        self._healthy = healthy
        self._log = log

    def render(self, request: IRequest) -> bytes:
        if self._healthy():
            return answer(request, "ok", status=200, log=self._log)
        return answer(request, "not ok", status=503, log=self._log)
