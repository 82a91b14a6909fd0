"""Small helpers at the boundary between coroutines and Deferreds."""

from __future__ import annotations

import inspect
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed


def as_deferred(value: Any) -> Deferred[Any]:
    """Turn whatever an extension returned (coroutine, Deferred, plain value) into a Deferred."""
    if inspect.iscoroutine(value):
        return Deferred.fromCoroutine(value)
    if isinstance(value, Deferred):
        return value
    return succeed(value)


def call_as_deferred(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call ``f`` and normalise its result, or the exception it raised, into a Deferred."""
    try:
        result = f(*args, **kwargs)
    except BaseException:
        return fail()
    return as_deferred(result)
