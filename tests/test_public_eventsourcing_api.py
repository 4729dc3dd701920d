"""The project uses only the eventsourcing library's public API.

A name with a leading underscore is the library's to change in any release:
importing one, reading or calling one on a library object, or overriding
one in a subclass of a library class would break on the next version. The
library's private names are collected from its own source, so the check
follows whichever version is installed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import eventsourcing

ROOT = Path(__file__).resolve().parent.parent
PROJECT = [ROOT / "domain", ROOT / "application", ROOT / "interface", ROOT / "benchmarks"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_names(tree: ast.AST) -> Iterator[str]:
    """Every function, class, attribute and variable name a module defines."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            yield node.attr
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id


def _modules(*folders: Path) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


LIBRARY = Path(eventsourcing.__file__).parent
LIBRARY_PRIVATE = {
    name
    for path, tree in _modules(LIBRARY)
    if "tests" not in path.relative_to(LIBRARY).parts
    for name in _defined_names(tree)
    if _private(name)
}


def _uses_of_library_privates() -> Iterator[str]:
    project = list(_modules(*PROJECT))
    own = {name for _, tree in project for name in _defined_names(tree) if _private(name)}
    for path, tree in project:
        where = path.relative_to(ROOT)
        library_names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("eventsourcing"):
                if any(_private(part) for part in (node.module or "").split(".")):
                    yield f"{where}:{node.lineno} imports from {node.module}"
                for alias in node.names:
                    library_names.add(alias.asname or alias.name)
                    if _private(alias.name):
                        yield f"{where}:{node.lineno} imports {alias.name} from {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("eventsourcing") and any(
                        _private(part) for part in alias.name.split(".")
                    ):
                        yield f"{where}:{node.lineno} imports {alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in LIBRARY_PRIVATE - own:
                yield f"{where}:{node.lineno} uses the library's {node.attr}"
            elif isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in library_names for base in node.bases
            ):
                for item in node.body:
                    if (
                        isinstance(item, ast.FunctionDef | ast.Assign | ast.AnnAssign)
                        and getattr(item, "name", None) in LIBRARY_PRIVATE
                    ):
                        yield f"{where}:{item.lineno} overrides the library's {item.name}"  # type: ignore[union-attr]


def test_the_library_has_private_names_to_check_against() -> None:
    assert {"_insert_tracking", "_create_table"} <= LIBRARY_PRIVATE


def test_no_private_name_of_the_eventsourcing_library_is_imported_used_or_overridden() -> None:
    assert list(_uses_of_library_privates()) == []
