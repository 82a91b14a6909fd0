"""Tests for the message-code catalogue (conch_container.messages) and its documentation."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import conch_container
from conch_container import messages
from conch_container.log import Level, MessageCode

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(conch_container.__file__).resolve().parent
CONTAINERSSH_CODES = Path(__file__).resolve().parent / "data" / "containerssh-codes.txt"

#: Attributes of ``messages`` that are not codes but may be used.
NON_CODE_ATTRIBUTES = frozenset({"CATALOGUE", "MessageCode", "Level"})


def containerssh_codes() -> list[str]:
    """ContainerSSH's own codes, one per line (``#`` starts a comment)."""
    lines = CONTAINERSSH_CODES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def constants() -> dict[str, MessageCode]:
    return {k: v for k, v in vars(messages).items() if isinstance(v, MessageCode)}


def load_generator() -> ModuleType:
    path = ROOT / "docs" / "gen_messages.py"
    if not path.exists():
        raise SkipTest("docs/ is not part of this installation")
    spec = importlib.util.spec_from_file_location("gen_messages", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class UsedCode:
    """One place in the source that names a code."""

    def __init__(self, path: Path, node: ast.AST, name: str) -> None:
        self.name = name
        shown = path.relative_to(PACKAGE.parent) if path.is_relative_to(PACKAGE.parent) else path
        self.where = f"{shown}:{getattr(node, 'lineno', '?')}"

    def __repr__(self) -> str:
        return f"{self.name} at {self.where}"


def used_codes(path: Path) -> list[UsedCode]:
    """Every ``messages.NAME``, ``from ...messages import NAME`` and ``code="NAME"`` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    # Names the messages module is bound to in this file.
    aliases = {"messages"}
    found: list[UsedCode] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "conch_container":
            aliases |= {a.asname or a.name for a in node.names if a.name == "messages"}
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "conch_container.messages" and a.asname:
                    aliases.add(a.asname)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "conch_container.messages":
            found += [UsedCode(path, node, a.name) for a in node.names]
        elif isinstance(node, ast.Attribute):
            value = node.value
            if isinstance(value, ast.Name) and value.id in aliases:
                found.append(UsedCode(path, node, node.attr))
            elif (
                isinstance(value, ast.Attribute)
                and value.attr == "messages"
                and isinstance(value.value, ast.Name)
                and value.value.id == "conch_container"
            ):
                found.append(UsedCode(path, node, node.attr))
        elif isinstance(node, ast.keyword) and node.arg == "code":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                found.append(UsedCode(path, node, node.value.value))
    return found


class CatalogueTests(SynchronousTestCase):
    def test_names_equal_codes(self) -> None:
        """Every constant is named after its code, and the catalogue holds each exactly once."""
        for name, code in constants().items():
            self.assertEqual(name, code.code)
        self.assertEqual(set(messages.CATALOGUE), set(constants()))

    def test_entries_complete(self) -> None:
        """Every code has a Level, a section and a non-empty explanation."""
        for code in messages.CATALOGUE.values():
            self.assertIsInstance(code.level, Level, code.code)
            self.assertTrue(code.section.strip(), code.code)
            self.assertTrue(code.explanation.strip(), code.code)

    def test_containerssh_codes_present(self) -> None:
        """Every code ContainerSSH logs is in the catalogue."""
        missing = [c for c in containerssh_codes() if c not in messages.CATALOGUE]
        self.assertEqual(missing, [])

    def test_own_marks(self) -> None:
        """Exactly the codes ContainerSSH does not have are marked as our own."""
        theirs = set(containerssh_codes())
        wrong = [
            code.code for code in messages.CATALOGUE.values() if code.own == (code.code in theirs)
        ]
        self.assertEqual(wrong, [])

    def test_source_uses_only_catalogued_codes(self) -> None:
        """The source names no code (``messages.X``, imports, ``code="X"``) the catalogue lacks."""
        files = sorted(PACKAGE.rglob("*.py"))
        self.assertTrue(files)
        unknown = [
            use
            for path in files
            for use in used_codes(path)
            if use.name not in messages.CATALOGUE and use.name not in NON_CODE_ATTRIBUTES
        ]
        self.assertEqual(unknown, [])

    def test_scanner_finds_uses(self) -> None:
        """The source scan recognises each way of naming a code (so the test above can fail)."""
        path = Path(self.mktemp())
        path.write_text(
            "from conch_container import messages as m\n"
            "import conch_container.messages as mm\n"
            "import conch_container\n"
            "from conch_container.messages import NOPE_1\n"
            "m.NOPE_2\n"
            "mm.NOPE_3\n"
            "conch_container.messages.NOPE_4\n"
            "log.info('x', code='NOPE_5')\n"
            "other.NOT_A_CODE\n"
            "log.info('x', code=variable)\n"
        )
        self.assertEqual(
            sorted(use.name for use in used_codes(path)), [f"NOPE_{i}" for i in range(1, 6)]
        )


class GeneratedDocsTests(SynchronousTestCase):
    def test_messages_md_current(self) -> None:
        """docs/messages.md is what docs/gen_messages.py generates now."""
        generator = load_generator()
        current = (ROOT / "docs" / "messages.md").read_text(encoding="utf-8")
        self.assertEqual(
            current,
            generator.render(),
            "docs/messages.md is out of date; run: python docs/gen_messages.py",
        )

    def test_every_code_documented(self) -> None:
        """The page lists every code with its level, and marks our own codes."""
        text = load_generator().render()
        for code in messages.CATALOGUE.values():
            row = next(line for line in text.splitlines() if line.startswith(f"| `{code.code}` |"))
            self.assertIn(f"| {code.level.label} |", row)
            self.assertEqual("added by conch-container" in row, code.own, code.code)

    def test_sections_in_module_order(self) -> None:
        """Sections appear in the order they first appear in the module."""
        order: list[str] = []
        for code in constants().values():
            if code.section not in order:
                order.append(code.section)
        text = load_generator().render()
        headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
        self.assertEqual(headings, order)
