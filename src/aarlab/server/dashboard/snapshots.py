"""Reading a method snapshot for people: its files as text, a name for the method, and diffs.

Snapshots are content-addressed tar.gz archives (see :mod:`aarlab.server.codestore`); they are read in
memory here, never extracted, and only regular files are shown. Everything is cached by sha256: a
snapshot never changes.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

#: Files larger than this are listed but not shown (a method folder is code and small configs).
MAX_SHOWN_BYTES = 256 * 1024
_IMPORTED_METHOD = re.compile(r"from\s+aarlab\.testbed\.methods\.(\w+)\s+import")


@dataclass(frozen=True)
class CodeFile:
    """One file of a snapshot: ``text`` is None for binary or oversized files (``note`` says why)."""

    path: str
    size: int  # bytes
    text: str | None
    note: str = ""


@dataclass(frozen=True)
class FileDiff:
    """A unified diff of one path between two snapshots; ``status`` says what happened to the file."""

    path: str
    status: Literal["added", "removed", "changed", "same"]
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConfigChange:
    key: str
    old: str  # JSON of the parent's value, "" when the key is new
    new: str  # JSON of this result's value, "" when the key was dropped
    change: Literal["added", "removed", "changed"]


def read_files(data: bytes) -> tuple[CodeFile, ...]:
    """The regular files of a tar.gz snapshot, sorted by path.

    Raises ``ValueError`` (with what is wrong) when the bytes are not a readable tar.gz archive."""
    return _read_files(data)


@lru_cache(maxsize=64)
def _read_files(data: bytes) -> tuple[CodeFile, ...]:
    out: list[CodeFile] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                if not m.isfile():
                    continue
                path = m.name.removeprefix("./")
                if m.size > MAX_SHOWN_BYTES:
                    out.append(CodeFile(path, m.size, None, f"not shown: {m.size:,} bytes"))
                    continue
                fh = tar.extractfile(m)
                raw = fh.read() if fh is not None else b""
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    out.append(CodeFile(path, m.size, None, "binary file"))
                    continue
                out.append(CodeFile(path, m.size, text))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"the snapshot is not a readable tar.gz archive ({e})") from None
    return tuple(sorted(out, key=lambda f: (f.path != "method.py", f.path)))


def method_name(files: tuple[CodeFile, ...] | list[CodeFile]) -> str:
    """A human name for the method in a snapshot: the first line of ``method.py``'s docstring, else the
    built-in method it imports (``compose``), else ``"method.py"``."""
    main = next((f for f in files if f.path == "method.py"), None)
    if main is None or main.text is None:
        return "method.py"
    try:
        doc = ast.get_docstring(ast.parse(main.text))
    except SyntaxError:
        doc = None
    if doc and doc.strip():
        return doc.strip().splitlines()[0].strip().rstrip(".")[:80]
    m = _IMPORTED_METHOD.search(main.text)
    return m.group(1) if m else "method.py"


def config_summary(config: dict[str, Any], limit: int = 60) -> str:
    """``key=value`` pairs of a config, sorted, in at most ``limit`` characters (for a table cell)."""
    text = ", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(config.items()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diff_files(
    old: tuple[CodeFile, ...] | list[CodeFile], new: tuple[CodeFile, ...] | list[CodeFile]
) -> list[FileDiff]:
    """Per path, a unified diff from ``old`` (the parent's snapshot) to ``new`` (this result's)."""
    before = {f.path: f for f in old}
    after = {f.path: f for f in new}
    out: list[FileDiff] = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        a_lines = (a.text or f"<{a.note}>\n").splitlines(keepends=True) if a else []
        b_lines = (b.text or f"<{b.note}>\n").splitlines(keepends=True) if b else []
        status: Literal["added", "removed", "changed", "same"]
        status = "added" if a is None else "removed" if b is None else "same"
        lines = [
            ln.rstrip("\n")
            for ln in difflib.unified_diff(a_lines, b_lines, f"parent/{path}", f"this/{path}", n=3)
        ]
        if status == "same" and lines:
            status = "changed"
        out.append(FileDiff(path, status, lines))
    return out


def diff_config(old: dict[str, Any], new: dict[str, Any]) -> list[ConfigChange]:
    """Keys whose value differs between the parent's config and this one (sorted by key)."""
    out: list[ConfigChange] = []
    for key in sorted(old.keys() | new.keys(), key=str):
        if key not in old:
            out.append(ConfigChange(str(key), "", json.dumps(new[key], sort_keys=True), "added"))
        elif key not in new:
            out.append(ConfigChange(str(key), json.dumps(old[key], sort_keys=True), "", "removed"))
        elif old[key] != new[key]:
            out.append(
                ConfigChange(
                    str(key),
                    json.dumps(old[key], sort_keys=True),
                    json.dumps(new[key], sort_keys=True),
                    "changed",
                )
            )
    return out
