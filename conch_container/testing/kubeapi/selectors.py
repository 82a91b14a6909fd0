"""Label and field selectors of list and watch requests.

The label selector grammar is the one ``kubectl -l`` and the clients send:
``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``,
joined by commas. Field selectors support the fields a pod list is filtered
by in practice (``metadata.name``, ``metadata.namespace``, ``status.phase``);
any other field is refused, as a real server refuses fields it does not index.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from conch_container.testing.kubeapi.status import bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(
    r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)
_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda pod: str(pod["metadata"]["name"]),
    "metadata.namespace": lambda pod: str(pod["metadata"]["namespace"]),
    "status.phase": lambda pod: str(pod["status"]["phase"]),
}


def _split(selector: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def label_matcher(selector: str) -> Matcher:
    """A predicate on pods for a label selector; :class:`ApiError` 400 when unreadable."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for requirement in _split(selector):
        match = _SET.match(requirement)
        if match is None:
            raise bad_request(f"unable to parse requirement: {requirement.strip()!r}")
        negate, key, op, value, set_op, values = match.groups()
        if negate and (op or set_op):
            raise bad_request(f"unable to parse requirement: {requirement.strip()!r}")
        tests.append(_label_test(key, bool(negate), op, value, set_op, values))

    def matches(pod: Mapping[str, Any]) -> bool:
        labels = pod["metadata"].get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def _label_test(
    key: str,
    negate: bool,
    op: str | None,
    value: str | None,
    set_op: str | None,
    values: str | None,
) -> Callable[[Mapping[str, str]], bool]:
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if set_op is not None:
        members = {v.strip() for v in (values or "").split(",") if v.strip()}
        if set_op == "in":
            return lambda labels: labels.get(key) in members
        return lambda labels: labels.get(key) not in members
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def field_matcher(selector: str) -> Matcher:
    """A predicate on pods for a field selector; :class:`ApiError` 400 for unknown fields."""
    tests: list[Matcher] = []
    for requirement in _split(selector):
        match = re.fullmatch(r"\s*([a-zA-Z.]+)\s*(==|=|!=)\s*(.*?)\s*", requirement)
        if match is None:
            raise bad_request(f"invalid selector: {requirement.strip()!r}")
        field, op, value = match.groups()
        getter = _FIELDS.get(field)
        if getter is None:
            raise bad_request(f'field label not supported: "{field}"')
        tests.append(_field_test(getter, op == "!=", value))
    return lambda pod: all(test(pod) for test in tests)


def _field_test(getter: Callable[[Mapping[str, Any]], str], negate: bool, value: str) -> Matcher:
    return lambda pod: (getter(pod) == value) != negate
