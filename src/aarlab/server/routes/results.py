"""Results queued for verified re-execution, and the leaderboard of verified scores only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import or_, select

from aarlab.server.deps import DB, Caller, State
from aarlab.server.models import Agent, Result, ReviewFlag, Snapshot, VerifiedScore
from aarlab.server.schemas import SEVERITY_ORDER, TASK_PATTERN, LeaderboardRow, ResultIn, ResultOut

router = APIRouter(prefix="/api/v1", tags=["results"])


def _out(r: Result) -> ResultOut:
    return ResultOut(
        id=r.id,
        task=r.task,
        snapshot_sha=r.snapshot_sha,
        status=r.status,
        created_at=r.created_at,
        reason=r.reason,
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
    """Verified rows of results that are not disqualified, best sealed accuracy first, with the number
    of open flags (on the result or its agent's dev log for the task) and the highest open severity.
    Claimed numbers never appear here."""
    rows = list(
        db.execute(
            select(VerifiedScore, Agent.name, Result.agent_id)
            .join(Result, Result.id == VerifiedScore.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(VerifiedScore.task == task, Result.status == "verified")
            .order_by(VerifiedScore.sealed_acc.desc().nulls_last(), VerifiedScore.id)
        ).tuples()
    )
    result_ids = [v.result_id for v, _, _ in rows]
    agent_ids = {a for _, _, a in rows}
    by_result: dict[int, list[str]] = {}
    by_agent: dict[int, list[str]] = {}
    if rows:
        flags = db.execute(
            select(ReviewFlag.result_id, ReviewFlag.agent_id, ReviewFlag.severity).where(
                ReviewFlag.status == "open",
                ReviewFlag.task == task,
                or_(
                    ReviewFlag.result_id.in_(result_ids),
                    (ReviewFlag.result_id.is_(None) & ReviewFlag.agent_id.in_(agent_ids)),
                ),
            )
        ).tuples()
        for rid, aid, sev in flags:
            if rid is None:
                by_agent.setdefault(aid, []).append(sev)
            else:
                by_result.setdefault(rid, []).append(sev)
    out = []
    for v, name, aid in rows:
        sevs = by_result.get(v.result_id, []) + by_agent.get(aid, [])
        top = max(sevs, key=SEVERITY_ORDER.index) if sevs else None
        out.append(
            LeaderboardRow(
                result_id=v.result_id,
                agent=name,
                task=v.task,
                dev_acc=v.dev_acc,
                dev_low=v.dev_low,
                dev_high=v.dev_high,
                sealed_acc=v.sealed_acc,
                sealed_low=v.sealed_low,
                sealed_high=v.sealed_high,
                pgr=v.pgr,
                pgr_low=v.pgr_low,
                pgr_high=v.pgr_high,
                weak_acc=v.weak_acc,
                ceiling_acc=v.ceiling_acc,
                open_flags=len(sevs),
                top_severity=top,  # type: ignore[arg-type]
            )
        )
    return out
