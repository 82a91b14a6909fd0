"""The bottom layers import one way: codes, then messages, then errors, then log.

Read from the source with :mod:`ast`: every import that runs (imports under
``if TYPE_CHECKING:`` are for the type checker only) of a module in these
layers names only its own layer or one below.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import conch_container

PACKAGE = Path(conch_container.__file__).parent

#: Each layer, bottom first, with the modules it consists of.
LAYERS: list[tuple[str, list[Path]]] = [
    ("conch_container.codes", [PACKAGE / "codes.py"]),
    ("conch_container.messages", [PACKAGE / "messages.py"]),
    ("conch_container.errors", [PACKAGE / "errors.py"]),
    ("conch_container.log", sorted((PACKAGE / "log").glob("*.py"))),
]


def runtime_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports when it runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "conch_container":
                found.update(f"conch_container.{alias.name}" for alias in node.names)
            elif node.module.startswith("conch_container."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("conch_container."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def layer_of(module: str) -> int | None:
    for index, (name, _) in enumerate(LAYERS):
        if module == name or module.startswith(name + "."):
            return index
    return None


class LayerTests(SynchronousTestCase):
    def test_imports_go_down_only(self) -> None:
        wrong = []
        for index, (_, paths) in enumerate(LAYERS):
            for path in paths:
                for module in sorted(runtime_imports(path)):
                    layer = layer_of(module)
                    if layer is None or layer > index:
                        wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
        self.assertEqual(wrong, [])

    def test_the_check_sees_imports(self) -> None:
        """The reader finds the imports that are there (so an empty result means something)."""
        self.assertEqual(runtime_imports(PACKAGE / "messages.py"), {"conch_container.codes"})
        self.assertIn("conch_container.errors", runtime_imports(PACKAGE / "log" / "setup.py"))
