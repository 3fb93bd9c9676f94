"""On-disk feature cache keyed by (encoder id, text hash), so a text is encoded once per machine.

Layout: ``<root>/<encoder id>/shard-<uuid>.npz`` holding ``keys`` (hex sha256 prefixes) and ``vecs``
(float32). Shards are append-only and written atomically (``testbed/files.py``), so several
processes can share a cache without locks and a killed run never leaves a torn shard behind. Only names
of the shard form are read (a temp file being written by another process once matched ``shard-*.npz``
and failed a reader with ``BadZipFile``); a shard that cannot be read is skipped with a warning, and its
texts are encoded again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
import zipfile
from pathlib import Path

import numpy as np

from aarlab.testbed.files import atomic_path

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SHARD = re.compile(r"shard-[0-9a-f]{32}\.npz")
log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    """A 128-bit content hash of a text (hex), the cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class FeatureCache:
    """Append-only store of encoder outputs for one encoder id."""

    def __init__(self, root: Path, encoder_id: str) -> None:
        self.dir = root / _SAFE.sub("_", encoder_id)
        self._index: dict[str, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []

    def _load(self) -> dict[str, tuple[int, int]]:
        if self._index is None:
            self._index = {}
            self._shards = []
            if self.dir.is_dir():
                for path in sorted(self.dir.glob("shard-*.npz")):
                    if not _SHARD.fullmatch(path.name):
                        continue
                    try:
                        with np.load(path) as z:
                            keys, vecs = z["keys"], z["vecs"]
                    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
                        log.warning("feature cache: skipping unreadable shard %s (%s); delete it", path, e)
                        continue
                    s = len(self._shards)
                    self._shards.append(vecs)
                    for row, k in enumerate(keys.tolist()):
                        self._index[k] = (s, row)
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (found mask, matrix of found rows in order) for ``keys``."""
        index = self._load()
        found = np.array([k in index for k in keys], dtype=bool)
        if not found.any():
            return found, None
        rows = [self._shards[s][r] for s, r in (index[k] for k, f in zip(keys, found, strict=True) if f)]
        return found, np.stack(rows)

    def put(self, keys: list[str], vecs: np.ndarray) -> None:
        """Append a shard of new vectors (atomically)."""
        if not keys:
            return
        with atomic_path(self.dir / f"shard-{uuid.uuid4().hex}.npz", ".npz") as tmp:
            np.savez(tmp, keys=np.array(keys), vecs=vecs.astype(np.float32))
        index = self._load()
        s = len(self._shards)
        self._shards.append(vecs.astype(np.float32))
        for row, k in enumerate(keys):
            index[k] = (s, row)
