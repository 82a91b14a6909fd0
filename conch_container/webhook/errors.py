"""What can go wrong in a webhook call, each kind with ContainerSSH's message code."""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure

from conch_container import messages
from conch_container.codes import MessageCode


class WebhookError(Exception):
    """A webhook call gave no usable answer.

    :ivar code: the message code for this kind of failure (``None`` for a
        non-200 status, which callers report under their own code).
    :ivar url: the URL called (without credentials).
    """

    code: MessageCode | None = None

    def __init__(self, reason: str, *, url: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url


class WebhookConnectionError(WebhookError):
    """The server was unreachable or the connection broke (``HTTP_CLIENT_CONNECTION_FAILED``)."""

    code = messages.HTTP_CLIENT_CONNECTION_FAILED


class WebhookTimeoutError(WebhookConnectionError):
    """No complete answer within the per-call timeout."""


class WebhookRedirectError(WebhookError):
    """A redirect was not followed: redirects are off, or there were too many."""

    code = messages.HTTP_CLIENT_REDIRECTS_DISABLED


class WebhookInsecureRedirectError(WebhookRedirectError):
    """A redirect from ``https`` to plain ``http`` was refused: it would leak the request."""


class WebhookStatusError(WebhookError):
    """The server answered with a status other than 200.

    :ivar status: the HTTP status code.
    """

    def __init__(self, status: int, *, url: str) -> None:
        super().__init__(f"invalid HTTP status code: {status}", url=url)
        self.status = status


class WebhookDecodeError(WebhookError):
    """The answer is not the JSON document expected (``HTTP_CLIENT_DECODE_FAILED``)."""

    code = messages.HTTP_CLIENT_DECODE_FAILED


class WebhookEncodeError(WebhookError):
    """The request could not be encoded as JSON (``HTTP_CLIENT_ENCODE_FAILED``); a bug."""

    code = messages.HTTP_CLIENT_ENCODE_FAILED


class WebhookConfigError(ValueError):
    """The HTTP client block is unusable (bad URL or TLS options)."""


def describe_failure(failure: Failure) -> str:
    """A one-line reason, unwrapping Twisted's ``ResponseNeverReceived([...])`` wrappers."""
    reasons = getattr(failure.value, "reasons", None)
    if reasons:
        return "; ".join(describe_failure(r) for r in reasons)
    name = failure.type.__name__ if failure.type is not None else "Error"
    return f"{name}: {failure.getErrorMessage()}"


def is_cancellation(failure: Failure) -> bool:
    """Whether ``failure`` is, or wraps, a cancellation (Twisted's agent wraps it)."""
    if failure.check(CancelledError):
        return True
    return any(is_cancellation(r) for r in getattr(failure.value, "reasons", None) or ())
