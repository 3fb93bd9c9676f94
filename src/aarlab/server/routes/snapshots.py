"""The code store over HTTP: upload a tar.gz of a method folder, fetch it by sha256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from aarlab.api.archive import UnsafeArchiveError, validate_archive
from aarlab.api.schemas import SnapshotOut
from aarlab.server.deps import DB, Caller, State
from aarlab.server.models import Snapshot

router = APIRouter(prefix="/api/v1/snapshots", tags=["code"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


@router.put(
    "",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_snapshot(request: Request, state: State, db: DB, caller: Caller) -> SnapshotOut:
    """Store a snapshot (idempotent: the same bytes give the same sha256, stored once)."""
    data = await request.body()
    limit = state.settings.max_snapshot_bytes
    if len(data) > limit:
        raise HTTPException(
            413,
            f"snapshot is {len(data)} bytes; the limit is {limit}: leave data and "
            "caches out of the method folder",
        )
    if not data:
        raise HTTPException(
            422, "empty body: send a tar.gz of the method folder (Content-Type: application/octet-stream)"
        )
    try:  # decompression is CPU work: never on the event loop that answers every other agent
        await run_in_threadpool(validate_archive, data)
    except UnsafeArchiveError as e:
        raise HTTPException(422, str(e)) from None
    sha = state.store.put(data)
    if db.get(Snapshot, sha) is None:
        db.add(Snapshot(sha256=sha, size=len(data), agent_id=caller.id))
    return SnapshotOut(sha256=sha, size=len(data))


@router.get("/{sha}", response_class=Response, responses={200: {"content": {"application/gzip": {}}}})
def get_snapshot(sha: Sha, state: State, db: DB, _caller: Caller) -> Response:
    if db.get(Snapshot, sha) is None:
        raise HTTPException(404, f"no snapshot {sha}")
    return Response(state.store.get(sha), media_type="application/gzip")
