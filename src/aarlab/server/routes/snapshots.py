"""The code store over HTTP: upload a tar.gz of a method folder, fetch it by sha256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from aarlab.api.schemas import SnapshotOut
from aarlab.server.deps import DB, Caller, State
from aarlab.server.queries import snapshots

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
    # decompression is CPU work: never on the event loop that answers every other agent
    await run_in_threadpool(snapshots.check_upload, data, state.settings.max_snapshot_bytes)
    return snapshots.store_snapshot(state.store, db, caller, data)


@router.get("/{sha}", response_class=Response, responses={200: {"content": {"application/gzip": {}}}})
def get_snapshot(sha: Sha, state: State, db: DB, _caller: Caller) -> Response:
    return Response(snapshots.snapshot_bytes(state.store, db, sha), media_type="application/gzip")
