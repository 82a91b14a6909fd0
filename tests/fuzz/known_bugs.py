"""Undocumented exceptions the fuzz targets found that are not fixed yet.

Each entry names the exception type and the product function it escapes
from. A target that meets exactly that exception counts it (outcome
``known-bug:<name>``) and goes on exploring, so one open bug does not hide
the others; anything else undocumented still fails the target. Every entry
has a regression test in the target's module that runs its minimal input
and fails until the bug is fixed; then the entry goes.
"""

from __future__ import annotations

import os
import traceback

import attrs

from tests.fuzz import note


@attrs.frozen
class KnownBug:
    """An open bug: ``error`` escapes from ``function`` in ``module`` (a path below the package)."""

    name: str
    error: type[BaseException] | tuple[type[BaseException], ...]
    module: str
    function: str


#: Empty while every bug the targets found is fixed; docs/fuzzing.md lists them.
KNOWN_BUGS: tuple[KnownBug, ...] = ()

_PACKAGE = os.sep + "conch_container" + os.sep


def _product_frames(error: BaseException) -> list[tuple[str, str]]:
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        index = frame.filename.rfind(_PACKAGE)
        if index >= 0:
            frames.append((frame.filename[index + len(_PACKAGE) :], frame.name))
    return frames


def known_bug(error: BaseException) -> str | None:
    """The name of the open bug ``error`` is, or ``None`` for anything else.

    The innermost product frame of its traceback must be the registered
    function (frames of libraries it calls may follow).
    """
    frames = _product_frames(error)
    if not frames:
        return None
    module, function = frames[-1]
    for bug in KNOWN_BUGS:
        if isinstance(error, bug.error) and (module, function) == (
            bug.module.replace("/", os.sep),
            bug.function,
        ):
            return bug.name
    return None


def count_known_bug(error: BaseException) -> None:
    """Count ``error`` as the open bug it is, or raise it again if it is none.

    Call it from the ``except`` clause that caught ``error``.
    """
    name = known_bug(error)
    if name is None:
        raise error
    note(f"known-bug:{name}")
