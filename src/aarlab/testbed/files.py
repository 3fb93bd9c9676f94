"""Atomic file writes for caches that several processes fill at once.

A writer gets a temp path of its own beside the target (hidden, the same filesystem, never a name a
reader's pattern matches) and renames it onto the target when it is complete. A fixed temp name
(``x.tmp``) is not enough: two processes writing the same cache entry share it, and one renames the
other's half-written file into place (a reader then fails with ``BadZipFile``; seen in a demo).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield ``.{name}.{random}.tmp{suffix}`` beside ``path``; on a clean exit rename it onto ``path``
    (readers see the old file or the whole new one), otherwise remove it. ``suffix``: an extension the
    writer insists on (``".npz"`` for ``np.savez``). The parent folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
