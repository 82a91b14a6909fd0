"""Reading one value of an API structure's field: the checks and conversions per :class:`Value`.

Each reader takes a raw non-null value and the key path it was found at, and
returns the value in the API's JSON or raises
:class:`~conch_container.config.ConfigError` naming the path.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from conch_container.config import durations
from conch_container.config.apitable import Value
from conch_container.config.schema import describe, fail, item, join


def mapping(raw: object, path: str) -> dict[str, Any]:
    """``raw`` as a mapping with string keys (a shallow copy), or a ConfigError at ``path``."""
    if not isinstance(raw, Mapping):
        fail(path, f"must be a mapping, not {describe(raw)}")
    for key in raw:
        if not isinstance(key, str):
            fail(join(path, str(key)), "keys must be strings")
    return dict(raw)


def list_of(raw: object, path: str) -> list[Any]:
    """``raw`` as a list (a shallow copy), or a ConfigError at ``path``."""
    if not isinstance(raw, list | tuple):
        fail(path, f"must be a list, not {describe(raw)}")
    return list(raw)


def _string(raw: object, path: str) -> str:
    # A number is taken as its text, as Go's YAML decoder takes it; a boolean
    # in a string field is almost certainly a mistake (``hostname: yes``).
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            return str(raw)
        except ValueError:
            fail(path, "the number has too many digits")
    fail(path, f"must be a string, not {describe(raw)}")


def _boolean(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        fail(path, f"must be true or false, not {describe(raw)}")
    return raw


def _integer_in(bits: int) -> Callable[[object, str], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def integer(raw: object, path: str) -> int:
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool):
            fail(path, f"must be an integer, not {describe(raw)}")
        # Beyond it, the API would refuse the whole request with a JSON error
        # that names no setting.
        if not low <= raw <= high:
            fail(path, f"must be between {low} and {high}")
        return raw

    return integer


_int64 = _integer_in(64)
_int32 = _integer_in(32)


def _duration(raw: object, path: str) -> int:
    """Nanoseconds from a Go duration string or a number of nanoseconds."""
    if isinstance(raw, str):
        try:
            return durations.parse_duration(raw)
        except ValueError as error:
            fail(path, str(error))
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if isinstance(raw, float) and not raw.is_integer():
            fail(path, "must be a whole number of nanoseconds")
        try:
            return durations.in_range(int(raw))
        except ValueError as error:
            fail(path, str(error))
    fail(path, f"must be a duration such as 30s or 1m30s, not {describe(raw)}")


#: What Kubernetes' ``ParseQuantity`` accepts: a decimal number, then a binary
#: (``Ki`` ... ``Ei``) or decimal (``n`` ... ``E``) suffix or an exponent.
_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def _quantity(raw: object, path: str) -> int | float | str:
    if isinstance(raw, str):
        if not _QUANTITY.fullmatch(raw.strip()):
            fail(path, f"{raw!r} is not a quantity (such as 2, 500m, 128Mi or 1G)")
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            fail(path, "must be a finite number")
        return raw
    fail(path, f"must be a quantity (a number or a string such as 500m), not {describe(raw)}")


def _int_or_string(raw: object, path: str) -> int | str:
    if isinstance(raw, str):
        return raw
    return _int32(raw, path)


_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _time(raw: object, path: str) -> str:
    text = _string(raw, path)
    if text and not _TIME.fullmatch(text):
        fail(path, f"{text!r} is not an RFC 3339 time (such as 2024-01-02T15:04:05Z)")
    return text


def _string_or_list(raw: object, path: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    return [_string(entry, item(path, i)) for i, entry in enumerate(list_of(raw, path))]


def _empty(raw: object, path: str) -> dict[str, Any]:
    if raw not in (None, {}):
        fail(path, f"must be empty ({{}} or null), not {describe(raw)}")
    return {}


READERS: dict[Value, Callable[[object, str], Any]] = {
    Value.STR: _string,
    Value.BOOL: _boolean,
    Value.INT: _int64,
    Value.INT32: _int32,
    Value.DURATION: _duration,
    Value.QUANTITY: _quantity,
    Value.INT_OR_STR: _int_or_string,
    Value.TIME: _time,
    Value.STR_OR_LIST: _string_or_list,
    Value.EMPTY: _empty,
}


#: What YAML can give that JSON cannot carry, and what the operator can write instead.
_NOT_JSON: tuple[tuple[type | tuple[type, ...], str, str], ...] = (
    (bytes, "binary data (!!binary)", "a string"),
    (datetime.date, "a date or time (!!timestamp)", "a quoted string"),
    ((set, frozenset), "a set (!!set)", "a list or a mapping"),
)


def json_copy(raw: object, path: str, ancestors: frozenset[int] = frozenset()) -> Any:
    """A copy of ``raw`` made of JSON values only, for a value passed on as it is.

    The APIs take JSON: a value ``json.dumps`` refuses (bytes, dates, sets)
    would fail the request far from the setting, and ``NaN`` or ``Infinity``
    would be sent as text the API's decoder refuses.

    :param ancestors: ids of the lists and mappings ``raw`` is inside, to
        refuse a YAML alias to its own anchor instead of recursing forever.
    """
    if raw is None or isinstance(raw, bool | int | str):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            fail(path, f"{raw!r} cannot be sent: JSON has no NaN or infinity")
        return raw
    if not isinstance(raw, Mapping | list | tuple):
        fail(path, _not_json(raw))
    if id(raw) in ancestors:
        fail(path, "the value contains itself (a YAML alias inside its anchor)")
    inside = ancestors | {id(raw)}
    if isinstance(raw, Mapping):
        return {k: json_copy(v, join(path, k), inside) for k, v in mapping(raw, path).items()}
    return [json_copy(entry, item(path, i), inside) for i, entry in enumerate(raw)]


def _not_json(raw: object) -> str:
    what, instead = f"a {type(raw).__name__} value", "a string"
    for types, known, replacement in _NOT_JSON:
        if isinstance(raw, types):
            what, instead = known, replacement
            break
    return f"{what} cannot be sent to an API that takes JSON; write {instead} instead"
