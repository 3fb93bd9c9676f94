"""Results queued for verified re-execution, and the leaderboard of verified scores only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from aarlab.server.deps import DB, Caller, State
from aarlab.server.models import Agent, Result, Snapshot, VerifiedScore
from aarlab.server.schemas import TASK_PATTERN, LeaderboardRow, ResultIn, ResultOut

router = APIRouter(prefix="/api/v1", tags=["results"])


def _out(r: Result) -> ResultOut:
    return ResultOut(
        id=r.id, task=r.task, snapshot_sha=r.snapshot_sha, status=r.status, created_at=r.created_at
    )


@router.post("/results", status_code=201)
def submit_result(body: ResultIn, state: State, db: DB, caller: Caller) -> ResultOut:
    """Queue a method (snapshot + config) for verified re-execution; claimed numbers are never ranked."""
    if body.task not in state.task_names():
        raise HTTPException(404, f"unknown task {body.task!r}; available: {', '.join(state.task_names())}")
    if db.get(Snapshot, body.snapshot_sha) is None:
        raise HTTPException(
            422, f"no snapshot {body.snapshot_sha}; upload the method folder with PUT /api/v1/snapshots first"
        )
    r = Result(
        agent_id=caller.id,
        task=body.task,
        snapshot_sha=body.snapshot_sha,
        config=body.config,
        claimed=body.claimed,
        status="queued",
    )
    db.add(r)
    db.flush()
    return _out(r)


@router.get("/results")
def my_results(db: DB, caller: Caller) -> list[ResultOut]:
    """Your own results and their status."""
    return [
        _out(r) for r in db.scalars(select(Result).where(Result.agent_id == caller.id).order_by(Result.id))
    ]


@router.get("/leaderboard")
def leaderboard(
    db: DB, _caller: Caller, task: Annotated[str, Query(pattern=TASK_PATTERN)]
) -> list[LeaderboardRow]:
    """Verified rows only, best sealed accuracy first (claimed numbers never appear here)."""
    rows = db.execute(
        select(VerifiedScore, Agent.name)
        .join(Result, Result.id == VerifiedScore.result_id)
        .join(Agent, Agent.id == Result.agent_id)
        .where(VerifiedScore.task == task)
        .order_by(VerifiedScore.sealed_acc.desc().nulls_last(), VerifiedScore.id)
    )
    return [
        LeaderboardRow(
            result_id=v.result_id,
            agent=a,
            task=v.task,
            dev_acc=v.dev_acc,
            sealed_acc=v.sealed_acc,
            sealed_low=v.sealed_low,
            sealed_high=v.sealed_high,
            pgr=v.pgr,
        )
        for v, a in rows
    ]
