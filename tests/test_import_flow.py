"""Quick guards on the import flow of issue #14, read from the source with ``ast`` (nothing imported):
the wire contract (``aarlab.api``) never imports the server, and the server never imports the layers
above it (agents, lab, CLI). Imports inside functions and ``TYPE_CHECKING`` blocks count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, src: Path = SRC) -> set[str]:
    """Absolute names of every module ``path`` (under ``src``) imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, src).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def violations(package: str, banned: tuple[str, ...], src: Path = SRC) -> list[str]:
    """``file: module`` for each import of a ``banned`` package (or a module in it) under ``package``."""
    root = src / package.replace(".", "/")
    assert root.is_dir(), f"no package {package} under {src}"
    found = []
    for path in sorted(root.rglob("*.py")):
        for name in sorted(imported_modules(path, src)):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(src)}: {name}")
    return found


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        ("aarlab.api", ("aarlab.server",)),
        ("aarlab.server", ("aarlab.agents", "aarlab.lab", "aarlab.cli")),
    ],
)
def test_package_does_not_import_the_layers_above_it(package: str, banned: tuple[str, ...]) -> None:
    assert violations(package, banned) == []


def test_the_wire_contract_imports_only_itself_and_the_error_types() -> None:
    """``aarlab.api`` is what agents, the CLI and the server share: it imports from aarlab nothing but
    itself and ``aarlab.testbed.errors`` (the layout of issue #14)."""
    allowed = ("aarlab.api", "aarlab.testbed.errors")
    found = [
        f"{path.relative_to(SRC)}: {name}"
        for path in sorted((SRC / "aarlab" / "api").rglob("*.py"))
        for name in sorted(imported_modules(path))
        if (name == "aarlab" or name.startswith("aarlab."))
        and not any(name == a or name.startswith(a + ".") for a in allowed)
    ]
    assert found == []


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The guard is not vacuous: plain, from, relative and function-local imports are all found, and a
    name that merely starts like a banned package (``aarlab.client``) is not."""
    pkg = tmp_path / "aarlab" / "api"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import aarlab.server.app\n")
    (pkg / "b.py").write_text("def f():\n    from aarlab.server import db\n")
    (pkg / "c.py").write_text("from ..server.models import Agent\n")
    (pkg / "d.py").write_text("from aarlab import server\nimport aarlab.serverless\n")
    found = violations("aarlab.api", ("aarlab.server",), tmp_path)
    assert [f.split(":")[0] for f in found] == [
        "aarlab/api/a.py",
        "aarlab/api/b.py",
        "aarlab/api/b.py",
        "aarlab/api/c.py",
        "aarlab/api/c.py",
        "aarlab/api/d.py",
    ]
    assert not any("serverless" in f for f in found)
