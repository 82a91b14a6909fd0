"""Small helpers at the boundary between coroutines and Deferreds."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, fail

T = TypeVar("T")


def as_deferred(value: Any) -> Deferred[Any]:
    """Turn whatever an extension returned (coroutine, Deferred, plain value) into a Deferred."""
    if inspect.iscoroutine(value):
        return Deferred.fromCoroutine(value)
    if isinstance(value, Deferred):
        return value
    return ensureDeferred(_immediate(value))


async def _immediate(value: T) -> T:
    return value


def call_as_deferred(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call ``f`` and normalise its result, or the exception it raised, into a Deferred."""
    try:
        result = f(*args, **kwargs)
    except BaseException:
        return fail()
    return as_deferred(result)
