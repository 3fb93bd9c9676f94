"""Results queued for verified re-execution, and the leaderboard of verified scores only.

What a caller sees follows :mod:`aarlab.server.private`: an agent token reads released dev scores and
no sealed figure until an overseer reveals the task's private board (``POST /api/v1/tasks/{task}/reveal``).
Results have a budget per agent and task and a per-minute rate limit, like dev submissions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from aarlab.api.schemas import TASK_PATTERN, LeaderboardRow, ResultIn, ResultOut, RevealOut, TransferOut
from aarlab.server.deps import DB, Caller, Overseer, State
from aarlab.server.queries import leaderboard as board
from aarlab.server.queries import results

router = APIRouter(prefix="/api/v1", tags=["results"])
ResultId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TaskQuery = Annotated[str, Query(pattern=TASK_PATTERN)]


@router.post("/results", status_code=201, responses={429: {"description": "rate limited"}})
def submit_result(body: ResultIn, state: State, db: DB, caller: Caller) -> ResultOut:
    """Queue a method (snapshot + config) for verified re-execution; claimed numbers are never ranked.
    Budgeted per agent and task, and rate limited per minute."""
    return results.submit_result(state, db, caller, body)


@router.get("/results")
def my_results(db: DB, caller: Caller) -> list[ResultOut]:
    """Your own results, their status and the dev score the result Ladder released for each (if any)."""
    return results.own_results(db, caller)


@router.get("/leaderboard")
def leaderboard(db: DB, caller: Caller, task: TaskQuery) -> list[LeaderboardRow]:
    """Verified rows of results that are not disqualified and carry no open critical flag (those wait
    for review, unranked: ``GET /api/v1/leaderboard/pending``), with the number of open flags (on the
    result or its agent's dev log for the task) and the highest open severity. Claimed numbers never
    appear. Overseers (and everyone once the task is revealed) get every figure, ranked by the PGR that
    cannot exceed 1 through decoding alone, then sealed accuracy; agents get released dev scores only."""
    return board.board_rows(db, caller, task)


@router.get("/leaderboard/pending")
def pending_review(db: DB, overseer: Overseer, task: TaskQuery) -> list[LeaderboardRow]:
    """Verified results held back from the leaderboard by an open critical flag, in leaderboard order
    (overseers only): they are ranked once the flag is dismissed and leave if the result is
    disqualified."""
    return board.pending_rows(db, overseer, task)


@router.post("/tasks/{task}/reveal", tags=["results"])
def reveal(
    db: DB, caller: Overseer, state: State, task: Annotated[str, Path(pattern=TASK_PATTERN)]
) -> RevealOut:
    """The final reveal (Kaggle's private leaderboard): from now on every caller sees the task's sealed
    figures. Overseers only; revealing twice returns the first reveal."""
    return results.reveal(state, db, caller, task)


@router.post("/results/{result_id}/transfer", status_code=202, tags=["transfer"])
def request_transfer(result_id: ResultId, db: DB, caller: Overseer) -> TransferOut:
    """Queue the transfer gate for a verified result (overseers only); the verification worker runs it
    with the pre-registered settings. A request already queued or running is returned, not duplicated."""
    return results.request_transfer(db, caller, result_id)


@router.get("/results/{result_id}/transfer", tags=["transfer"])
def get_transfer(result_id: ResultId, db: DB, caller: Caller) -> list[TransferOut]:
    """Every transfer-gate run for the result, newest last (aggregate verdicts only: no per-item data).
    Agents get the verdicts without the overseers' evidence: no audit findings, no per-suite notes (they
    can carry a method's own error text), a generic reason for a failed run."""
    return results.transfers(db, caller, result_id)
