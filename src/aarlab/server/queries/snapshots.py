"""Method snapshots: tar.gz archives of a method folder, stored once by sha256 in the code store and
recorded (size, uploader) in the database."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aarlab.api.archive import UnsafeArchiveError, validate_archive
from aarlab.api.schemas import SnapshotOut
from aarlab.server.codestore import CodeStore
from aarlab.server.errors import NotFound, TooLarge, Unprocessable
from aarlab.server.models import Agent, Snapshot, utcnow


def check_upload(data: bytes, limit: int) -> None:
    """413 over ``limit`` bytes and 422 for an empty body or an archive that is unsafe to unpack.

    CPU work (it decompresses): call it off the event loop."""
    if len(data) > limit:
        raise TooLarge(
            f"snapshot is {len(data)} bytes; the limit is {limit}: leave data and "
            "caches out of the method folder"
        )
    if not data:
        raise Unprocessable(
            "empty body: send a tar.gz of the method folder (Content-Type: application/octet-stream)"
        )
    try:
        validate_archive(data)
    except UnsafeArchiveError as e:
        raise Unprocessable(str(e)) from None


def store_snapshot(store: CodeStore, db: Session, uploader: Agent, data: bytes) -> SnapshotOut:
    """Store checked bytes (idempotent: the same bytes give the same sha256, stored once).

    The row is written with ``INSERT ... ON CONFLICT DO NOTHING``: agents uploading the same method at
    the same moment all succeed (a read-then-insert let the second writer fail with a server error)."""
    sha = store.put(data)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    row = {"sha256": sha, "size": len(data), "agent_id": uploader.id, "created_at": utcnow()}
    db.execute(insert(Snapshot).values(**row).on_conflict_do_nothing(index_elements=["sha256"]))
    return SnapshotOut(sha256=sha, size=len(data))


def snapshot_bytes(store: CodeStore, db: Session, sha: str) -> bytes:
    """The stored tar.gz; :class:`NotFound` when no snapshot of that sha256 was uploaded."""
    if db.get(Snapshot, sha) is None:
        raise NotFound(f"no snapshot {sha}")
    return store.get(sha)
