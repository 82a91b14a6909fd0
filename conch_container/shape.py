"""Limits on the shape of decoded documents: how deep, how many values, no cycles.

Configuration files, per-user files and webhook answers are decoded into
plain dicts and lists, and the code that reads them (conversion, copying,
dumping) walks them recursively. YAML lets a document nest 1000 levels deep
and aliases make a value contain itself or expand exponentially; JSON nests
as deep as the decoder recurses. Checking the shape once, right after
decoding and without recursion, keeps every later walk safe and turns a
hostile or broken document into an error that names where it went wrong.

The limits are far beyond anything a real document needs: ContainerSSH's
deepest settings (a Kubernetes pod spec) nest about a dozen levels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: How many containers (mappings and lists) may enclose a value.
MAX_DEPTH = 100

#: How many values a document may hold in all, counting each alias expansion.
MAX_VALUES = 200_000


class ShapeError(ValueError):
    """A decoded document is nested too deeply, too large, or contains itself.

    :ivar path: where, as a key path (``a.b[2].c``); ``""`` for the top.
    :ivar problem: what, for an operator.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(top)'}: {problem}")
        self.path = path
        self.problem = problem


def _children(value: Any, path: str) -> Iterator[tuple[Any, str]] | None:
    if isinstance(value, Mapping):
        return ((child, f"{path}.{key}" if path else str(key)) for key, child in value.items())
    if isinstance(value, (list, tuple)):
        return ((child, f"{path}[{index}]") for index, child in enumerate(value))
    return None


def check_shape(data: Any, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Refuse ``data`` if it nests deeper than ``max_depth``, holds more than
    ``max_values`` values, or contains itself.

    Shared values (YAML aliases without a cycle) are allowed; each use counts
    towards ``max_values``, which is what bounds an alias "bomb".

    :raises ShapeError: naming the first offending key path.
    """
    # Iterative depth-first walk; a ``None`` path marks leaving a container,
    # so ``enclosing`` holds exactly the containers around the current value.
    stack: list[tuple[Any, str | None, int]] = [(data, "", 0)]
    enclosing: set[int] = set()
    count = 0
    while stack:
        value, path, depth = stack.pop()
        if path is None:
            enclosing.discard(id(value))
            continue
        count += 1
        if count > max_values:
            raise ShapeError(path, f"the document holds more than {max_values} values")
        children = _children(value, path)
        if children is None:
            continue
        if id(value) in enclosing:
            raise ShapeError(path, "the value contains itself (a recursive YAML alias)")
        if depth >= max_depth:
            raise ShapeError(path, f"nested more than {max_depth} levels deep")
        enclosing.add(id(value))
        stack.append((value, None, depth))
        stack.extend(
            (child, child_path, depth + 1) for child, child_path in reversed(list(children))
        )
