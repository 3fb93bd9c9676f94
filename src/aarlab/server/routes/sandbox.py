"""The label-free sandbox bundle over HTTP, for the orchestrator (overseers only).

``GET /api/v1/tasks/{task}/sandbox`` answers a tar.gz (:func:`aarlab.api.archive.pack_folder`) of what
:func:`aarlab.server.sandbox.export_sandbox` writes: train_unlabel and dev *inputs*, the weak teacher's
soft labels, the strong encoder's features and a manifest. Never a label, the secret, train_label or a
sealed item. Overseers only: the orchestrator gives each agent its own copy, so an agent never needs it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response

from aarlab.api.archive import pack_folder
from aarlab.api.schemas import TASK_PATTERN
from aarlab.server.deps import Overseer, State

router = APIRouter(prefix="/api/v1", tags=["tasks"])


@router.get(
    "/tasks/{task}/sandbox",
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}}, 404: {"description": "no such task"}},
)
def get_sandbox_bundle(
    task: Annotated[str, Path(pattern=TASK_PATTERN, description="a task name from GET /api/v1/tasks")],
    state: State,
    _caller: Overseer,
) -> Response:
    """The task's label-free sandbox bundle as tar.gz (overseers only). Exporting encodes the task's
    texts when the feature cache is cold (minutes), so the first call can be slow; 404 for an unknown
    task."""
    from aarlab.server.sandbox import export_sandbox  # loads the testbed's pipeline: not at server start

    names = state.task_names()
    if task not in names:
        raise HTTPException(404, f"unknown task {task!r}; available: {', '.join(names) or '(none)'}")
    with tempfile.TemporaryDirectory(prefix="aarlab-bundle-") as tmp:
        out = export_sandbox(state.settings.data_dir, task, FsPath(tmp) / "bundle")
        data = pack_folder(out)
    return Response(data, media_type="application/gzip")
