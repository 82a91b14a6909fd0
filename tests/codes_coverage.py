"""The shared checks behind the ``test_*_codes_coverage`` modules.

An operator's alert on a code is only as good as the code's promise: it is
logged in the situation its explanation names. Each coverage module maps the
codes of one family (a prefix of :data:`conch_container.messages.CATALOGUE`)
to the tests (``module.Class.method``) that drive the gateway into that
situation and assert the code, and lists, with the reason, the codes the
gateway has no situation for. :class:`CodesCoverageMixin` checks that the two
together are exactly the family, that every named test exists and names its
code, that a produced code is logged by the package, and that a code said not
to be produced is logged nowhere.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from conch_container import messages

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _Base = SynchronousTestCase
else:
    _Base = object

_PACKAGE = Path(__file__).resolve().parent.parent / "conch_container"


def resolve(dotted: str) -> object:
    """The test method named ``module.Class.method``."""
    module_name, class_name, method_name = dotted.rsplit(".", 2)
    module = importlib.import_module(module_name)
    return getattr(getattr(module, class_name), method_name)


def emitted_in_package(code: str) -> list[str]:
    """The package files that log ``code`` (``messages.CODE`` outside the catalogue)."""
    pattern = re.compile(rf"\bmessages\.{code}\b")
    return [
        str(path.relative_to(_PACKAGE))
        for path in sorted(_PACKAGE.rglob("*.py"))
        if path.name != "messages.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]


class CodesCoverageMixin(_Base):
    """Mix into a ``SynchronousTestCase`` and set the three class attributes.

    :cvar prefix: the family, e.g. ``"DOCKER_"``.
    :cvar producers: each code -> the tests that produce and assert it.
    :cvar not_produced: each code the gateway has no situation for -> why.
    """

    prefix: ClassVar[str]
    producers: ClassVar[Mapping[str, tuple[str, ...]]]
    not_produced: ClassVar[Mapping[str, str]] = {}

    def family(self) -> set[str]:
        return {code for code in messages.CATALOGUE if code.startswith(self.prefix)}

    def test_every_code_accounted_for(self) -> None:
        """Every code of the family has a producing test or a reason; no others are listed."""
        listed = set(self.producers) | set(self.not_produced)
        self.assertEqual(
            sorted(self.family() - listed),
            [],
            f"{self.prefix}* codes that no test produces: add a test and list it",
        )
        self.assertEqual(sorted(listed - self.family()), [], "codes no longer in the catalogue")
        self.assertEqual(sorted(set(self.producers) & set(self.not_produced)), [])

    def test_named_tests_exist(self) -> None:
        """Every named test exists and is a test method."""
        missing = []
        for code, tests in sorted(self.producers.items()):
            self.assertTrue(tests, f"{code}: no test named")
            for dotted in tests:
                try:
                    method = resolve(dotted)
                except (ImportError, AttributeError) as e:
                    missing.append(f"{code}: {dotted} ({e})")
                    continue
                if not (callable(method) and dotted.rsplit(".", 1)[1].startswith("test")):
                    missing.append(f"{code}: {dotted} is not a test method")
        self.assertEqual(missing, [])

    def test_named_tests_assert_their_code(self) -> None:
        """Each named test's own source names the code it is listed for."""
        silent = []
        for code, tests in sorted(self.producers.items()):
            for dotted in tests:
                try:
                    source = inspect.getsource(resolve(dotted))  # type: ignore[arg-type]
                except (ImportError, AttributeError):
                    continue  # reported by test_named_tests_exist
                if not re.search(rf"\b{code}\b", source):
                    silent.append(f"{code}: {dotted}")
        self.assertEqual(silent, [])

    def test_produced_codes_are_logged_somewhere(self) -> None:
        """A code with producing tests is logged by the package (the tests are not of a fake)."""
        self.assertEqual([c for c in sorted(self.producers) if not emitted_in_package(c)], [])

    def test_not_produced_codes_are_logged_nowhere(self) -> None:
        """A code said to have no situation is not logged anywhere in the package."""
        logged = {code: emitted_in_package(code) for code in self.not_produced}
        self.assertEqual({code: files for code, files in logged.items() if files}, {})
