"""Answers as plain text or JSON, as the client's ``Accept`` header prefers.

ContainerSSH's HTTP services answer one value either way: the health
endpoint sends ``ok`` to a plain client and ``"ok"`` to one that accepts
``application/json``. :func:`answer` does the same for any resource here.
Plain text wins unless JSON is asked for by name with a higher quality, so
``curl`` (``*/*``) and an orchestrator's probe get the text form.
"""

from __future__ import annotations

import json

from twisted.web.iweb import IRequest

from conch_container import messages
from conch_container.httpserver.site import FAILED_BODY
from conch_container.log import CodeLogger

__all__ = ["JSON", "TEXT", "answer", "preferred_type"]

JSON = "application/json"
TEXT = "text/plain"


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def preferred_type(accept: str | None) -> str:
    """:data:`JSON` if ``accept`` prefers it to plain text by quality, else :data:`TEXT`."""
    if not accept:
        return TEXT
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        media, *parameters = item.split(";")
        media = media.strip().lower()
        if media in (JSON, TEXT):
            qualities[media] = max(qualities.get(media, 0.0), _quality(parameters))
    json_quality = qualities.get(JSON, 0.0)
    if json_quality > 0 and json_quality > qualities.get(TEXT, 0.0):
        return JSON
    return TEXT


def answer(request: IRequest, value: object, *, status: int = 200, log: CodeLogger) -> bytes:
    """Set the status and content type of ``request``; return the body for ``value``.

    A resource's ``render`` returns what this returns.

    Plain text is ``str(value)``; JSON is ``value`` encoded. A value that
    cannot be encoded is a bug of the resource: it is logged as
    ``HTTP_SERVER_ENCODE_FAILED`` and the client gets a bare 500.
    """
    accept = request.getHeader("accept")
    media = preferred_type(accept if isinstance(accept, str) else None)
    try:
        if media == JSON:
            body = json.dumps(value, allow_nan=False).encode("utf-8")
        else:
            body = str(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeError) as e:
        log.event(
            messages.HTTP_SERVER_ENCODE_FAILED,
            "Cannot encode the answer as {media}: {reason}",
            media=media,
            reason=str(e),
        )
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return FAILED_BODY
    request.setResponseCode(status)
    request.setHeader(b"content-type", f"{media}; charset=utf-8".encode("ascii"))
    # The answer differs by Accept: caches must not hand one client's form to another.
    request.setHeader(b"vary", b"Accept")
    return body
