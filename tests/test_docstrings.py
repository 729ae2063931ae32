"""Every public name of ``src/missile`` has a docstring (the API reference is generated
from them), except those in an explicit allowlist that may only shrink.

Public: every module whose path has no part starting with ``_`` (``__init__`` counts as
public), and in it every top-level class and function not starting with ``_`` (only the
names of ``__all__`` when the module has one), and every method and property of those
classes not starting with ``_``. A method that overrides a documented method of a base
inherits its docstring, as :func:`inspect.getdoc` and ``help()`` do: bases in
``src/missile`` are found by class name, others (``logging.Formatter``, ...) by
importing the module and asking :func:`inspect.getdoc`.

``tests/docstring_allowlist.txt`` lists the names that had none when the check was
introduced. The test fails when a listed name gains a docstring (delete its line) as
well as when a name outside the list lacks one. Regenerate after documenting:
``python tests/test_docstrings.py --update``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
ALLOWLIST = Path(__file__).resolve().parent / "docstring_allowlist.txt"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_public_module(path: Path) -> bool:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return not any(p.startswith("_") and p != "__init__" and p != "__main__" for p in parts) and (
        parts[-1] != "__main__"
    )


def _exported(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                try:
                    return set(ast.literal_eval(node.value))
                except ValueError:
                    return None
    return None


def _is_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "overload") or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in node.decorator_list
    )


def _class_index() -> dict[str, list[ast.ClassDef]]:
    index: dict[str, list[ast.ClassDef]] = {}
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                index.setdefault(node.name, []).append(node)
    return index


def _base_names(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        if isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return names


def _inherits_doc(node: ast.ClassDef, method: str, index: dict[str, list[ast.ClassDef]], depth: int = 0) -> bool:
    if depth > 10:
        return False
    for name in _base_names(node):
        for base in index.get(name, []):
            for item in base.body:
                if (
                    isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and item.name == method
                    and ast.get_docstring(item) is not None
                ):
                    return True
            if _inherits_doc(base, method, index, depth + 1):
                return True
    return False


def _runtime_doc(module: str, cls: str, method: str) -> bool:
    """Whether ``help()`` would show a docstring (inherited from any base) for the method."""
    try:
        obj = getattr(getattr(importlib.import_module(module), cls), method)
    except Exception:  # an extra's package missing, or anything else: count it as undocumented
        return False
    return inspect.getdoc(obj) is not None


def undocumented() -> Iterator[str]:
    """The qualified public names without a docstring, in source order."""
    index = _class_index()
    for path in sorted(ROOT.rglob("*.py")):
        if not _is_public_module(path):
            continue
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if ast.get_docstring(tree) is None:
            yield f"{module} (module)"
        exported = _exported(tree)
        for node in tree.body:
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_") or (exported is not None and node.name not in exported):
                continue
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_overload(node):
                continue
            if ast.get_docstring(node) is None:
                yield f"{module}.{node.name}"
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                        and not item.name.startswith("_")
                        and not _is_overload(item)
                        and ast.get_docstring(item) is None
                        and not _inherits_doc(node, item.name, index)
                        and not _runtime_doc(module, node.name, item.name)
                    ):
                        yield f"{module}.{node.name}.{item.name}"


def _allowlist() -> list[str]:
    lines = ALLOWLIST.read_text(encoding="utf-8").splitlines() if ALLOWLIST.exists() else []
    return [line for line in lines if line and not line.startswith("#")]


def test_every_public_name_has_a_docstring() -> None:
    missing = set(undocumented())
    allowed = set(_allowlist())
    new = sorted(missing - allowed)
    assert not new, "public names without a docstring (document them):\n" + "\n".join(new)


def test_the_allowlist_only_shrinks() -> None:
    missing = set(undocumented())
    stale = sorted(set(_allowlist()) - missing)
    assert not stale, (
        "documented now or gone: delete these lines from tests/docstring_allowlist.txt:\n" + "\n".join(stale)
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        names = list(undocumented())
        header = (
            "# Public names of src/missile without a docstring when tests/test_docstrings.py was added.\n"
            "# This list may only shrink: document a name, then delete its line.\n"
        )
        ALLOWLIST.write_text(header + "\n".join(names) + "\n", encoding="utf-8")
        print(f"{len(names)} names")
    else:
        for name in undocumented():
            print(name)
