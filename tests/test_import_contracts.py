"""Import contracts that import-linter cannot express (docs/architecture.md).

The layer contracts themselves run as ``lint-imports`` in ``make lint``; this file checks that no private
name (``_x``) of a module is used from another package: a private name may be imported, or read as a
module attribute, only by modules in the same package (the same folder) as the module that defines it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str, is_package: bool) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    return module if is_package else module.rpartition(".")[0]


def private_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """``module``'s uses of another package's private names, as ``"line N: what"`` strings.

    Covers ``from aarlab.x.y import _z`` and ``m._z`` where ``m`` was bound by an aarlab import
    (``import aarlab.x.y as m`` or ``from aarlab.x import y``). Relative imports are resolved.
    """
    own = _package(module, is_package)
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> the aarlab module it names
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = own.split(".")
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("aarlab"):
                continue
            for alias in node.names:
                if _is_private(alias.name) and target.rpartition(".")[0] != own and target != own:
                    found.append(f"line {node.lineno}: from {target} import {alias.name}")
                bound[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aarlab"):
                    bound[alias.asname or alias.name] = alias.name if alias.asname else "aarlab"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and _is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
        ):
            target = bound[node.value.id]
            if target.rpartition(".")[0] != own and target != own:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr} ({target})")
    return found


def test_no_private_name_is_used_across_packages() -> None:
    problems = []
    for path in sorted((SRC / "aarlab").rglob("*.py")):
        module = _module_name(path, SRC)
        for p in private_imports(
            path.read_text(encoding="utf-8"), module, is_package=path.stem == "__init__"
        ):
            problems.append(f"{path.relative_to(SRC)} {p}")
    assert not problems, "private names used across packages (make them public or move them):\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from aarlab.verify.runner import _PARENT_LOCK\n", "aarlab.server.worker", 1),
        ("from aarlab.verify import runner\nrunner._PARENT_LOCK\n", "aarlab.server.worker", 1),
        ("import aarlab.verify.runner as r\nr._x()\n", "aarlab.server.worker", 1),
        ("from ..verify.runner import _x\n", "aarlab.server.worker", 1),
        # the same package may share private names; public and dunder names are always fine
        ("from aarlab.server.db import _engine\n", "aarlab.server.worker", 0),
        ("from .db import _engine\n", "aarlab.server.worker", 0),
        ("from aarlab.verify.runner import PARENT_LOCK, __all__\n", "aarlab.server.worker", 0),
        ("from aarlab.server.routes.forum import _page\n", "aarlab.server", 1),
    ],
)
def test_the_check_sees_private_imports(source: str, module: str, expected: int) -> None:
    is_package = module == "aarlab.server"
    assert len(private_imports(source, module, is_package=is_package)) == expected
