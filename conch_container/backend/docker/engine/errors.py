"""The one error the Docker engine layer raises, and the translation into it.

:func:`engine_errors` wraps each blocking docker-py call (the ``thd_*``
functions of :mod:`.api` and :mod:`.containers`), so that nothing but
:class:`EngineError` leaves the pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import docker.errors
import requests
import urllib3.exceptions

P = ParamSpec("P")
T = TypeVar("T")


class EngineError(Exception):
    """A Docker engine call failed.

    :ivar message: the engine's (or the HTTP client's) explanation, for logs only.
    :ivar status: the HTTP status of the engine's answer, if there was one.
    :ivar unsent: whether the request certainly never reached the engine (no
        connection could be made), so that it cannot have had any effect.
    """

    def __init__(self, message: str, status: int | None = None, unsent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.unsent = unsent

    @property
    def not_found(self) -> bool:
        """The engine answered 404: no such container, image or exec."""
        return self.status == 404


def engine_errors(f: Callable[P, T]) -> Callable[P, T]:
    """Turn docker-py and requests exceptions into :class:`EngineError`."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return f(*args, **kwargs)
        except EngineError:
            raise
        except docker.errors.APIError as e:
            raise EngineError(str(e.explanation or e), e.status_code) from e
        except (docker.errors.DockerException, requests.RequestException, OSError) as e:
            raise EngineError(str(e) or type(e).__name__, unsent=_never_sent(e)) from e

    return wrapper


def _never_sent(error: BaseException) -> bool:
    """Whether ``error`` says no connection to the engine could be made at all."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError) or not error.args:
        return isinstance(error, FileNotFoundError | ConnectionRefusedError)
    cause = error.args[0]
    # TCP: MaxRetryError(reason=NewConnectionError); a unix socket:
    # ProtocolError("Connection aborted.", FileNotFoundError or ConnectionRefusedError).
    if isinstance(cause, urllib3.exceptions.MaxRetryError):
        cause = cause.reason
    elif isinstance(cause, urllib3.exceptions.ProtocolError) and len(cause.args) > 1:
        cause = cause.args[1]
    return isinstance(
        cause, urllib3.exceptions.NewConnectionError | FileNotFoundError | ConnectionRefusedError
    )
