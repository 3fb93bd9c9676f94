"""Content-addressed, immutable snapshots of method folders (tar.gz), stored through fsspec.

A local directory by default; ``s3://bucket/prefix`` (s3fs) for clusters. The archive format and its
safety checks live in ``aarlab.api.archive`` (shared with the client); routes validate before storing.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import fsspec

from aarlab.testbed.errors import AarlabError


class CodeStore:
    """Snapshots by sha256 under an fsspec URL; writing the same bytes twice is a no-op."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, sha: str) -> str:
        return f"{self.root}/{sha[:2]}/{sha}.tar.gz"

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if not self.fs.exists(path):
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            # a temporary name of this writer's own: concurrent uploads of the same bytes each write
            # their own part and the last rename wins with identical content (a shared ".part" name let
            # one writer move the other's part away mid-write)
            tmp = f"{path}.{secrets.token_hex(8)}.part"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, path)
        return sha

    def get(self, sha: str) -> bytes:
        data: bytes = self.fs.cat_file(self._path(sha))
        if hashlib.sha256(data).hexdigest() != sha:
            raise AarlabError(f"snapshot {sha} is corrupt in storage (hash mismatch)")
        return data

    def exists(self, sha: str) -> bool:
        return bool(self.fs.exists(self._path(sha)))
