"""Read-only queries behind the run page (the other pages reuse the API's own query functions in
:mod:`aarlab.server.queries`, so the dashboard shows exactly what the API shows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.server.models import Agent, AgentUsage, Result, ReviewFlag, TransferVerdict, VerifiedScore


@dataclass(frozen=True)
class Progress:
    """Per agent, the best verified score so far at each time a new verified score arrived."""

    metric: str  # "pgr" or "sealed_acc"
    series: dict[str, list[tuple[datetime, float]]]


@dataclass(frozen=True)
class MatrixRow:
    result_id: int
    agent: str
    result_status: str
    verdict: str
    reason: str
    #: suite name -> that suite's entry of the gate report (delta_pgr, delta_pgr_ci, status, p_holm, ...)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Matrix:
    suites: list[str]
    rows: list[MatrixRow]


def _aware(t: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def progress(db: Session, task: str, *, private: bool = False) -> Progress:
    """Best verified PGR over time per agent (sealed accuracy when no score of the task has a PGR).
    ``private`` (an agent before the reveal): the released dev scores instead, never a sealed figure.

    Only results that are still ``verified`` count: a disqualified result leaves the curve as it leaves
    the leaderboard."""
    if private:
        released = (
            db.execute(
                select(VerifiedScore.created_at, VerifiedScore.released_dev, Agent.name)
                .join(Result, Result.id == VerifiedScore.result_id)
                .join(Agent, Agent.id == Result.agent_id)
                .where(
                    VerifiedScore.task == task,
                    Result.status == "verified",
                    VerifiedScore.released_dev.is_not(None),
                )
                .order_by(VerifiedScore.created_at, VerifiedScore.id)
            )
            .tuples()
            .all()
        )
        dev_series: dict[str, list[tuple[datetime, float]]] = {}
        for created, value, name in released:
            points = dev_series.setdefault(name, [])
            best = max(float(value or 0.0), points[-1][1]) if points else float(value or 0.0)
            points.append((_aware(created), best))
        return Progress(metric="released_dev", series=dev_series)
    rows = (
        db.execute(
            select(VerifiedScore.created_at, VerifiedScore.pgr, VerifiedScore.sealed_acc, Agent.name)
            .join(Result, Result.id == VerifiedScore.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(VerifiedScore.task == task, Result.status == "verified")
            .order_by(VerifiedScore.created_at, VerifiedScore.id)
        )
        .tuples()
        .all()
    )
    metric = "pgr" if any(pgr is not None for _, pgr, _, _ in rows) else "sealed_acc"
    series: dict[str, list[tuple[datetime, float]]] = {}
    for created, pgr, sealed, name in rows:
        value = pgr if metric == "pgr" else sealed
        if value is None:
            continue
        points = series.setdefault(name, [])
        best = max(value, points[-1][1]) if points else value
        points.append((_aware(created), best))
    return Progress(metric=metric, series=series)


def transfer_matrix(db: Session, task: str) -> Matrix:
    """The newest finished verdict of every result of the task that has one, with its per-suite ΔPGR."""
    rows = (
        db.execute(
            select(TransferVerdict, Result.status, Agent.name)
            .join(Result, Result.id == TransferVerdict.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(Result.task == task, TransferVerdict.status == "done")
            .order_by(TransferVerdict.id)
        )
        .tuples()
        .all()
    )
    latest: dict[int, MatrixRow] = {}
    suites: list[str] = []
    for t, status, name in rows:
        cells: dict[str, dict[str, Any]] = {}
        for entry in (t.report or {}).get("suites") or []:
            if not isinstance(entry, dict):
                continue
            suite = entry.get("suite")
            label = str(suite.get("name")) if isinstance(suite, dict) else str(suite)
            cells[label] = entry
            if label not in suites:
                suites.append(label)
        latest[t.result_id] = MatrixRow(
            result_id=t.result_id,
            agent=name,
            result_status=status,
            verdict=t.verdict or "?",
            reason=t.reason or "",
            cells=cells,
        )
    return Matrix(suites=suites, rows=sorted(latest.values(), key=lambda r: r.result_id))


def run_counts(db: Session, task: str) -> dict[str, dict[str, int]]:
    """Results of the task by status, agents by status, and open flags (for overseers' run summary)."""
    results = db.execute(
        select(Result.status, func.count()).where(Result.task == task).group_by(Result.status)
    ).tuples()
    agents = db.execute(select(AgentUsage.status, func.count()).group_by(AgentUsage.status)).tuples()
    flags = db.scalar(
        select(func.count())
        .select_from(ReviewFlag)
        .where(ReviewFlag.task == task, ReviewFlag.status == "open")
    )
    return {
        "results": {s: int(n) for s, n in results},
        "agents": {s: int(n) for s, n in agents},
        "flags": {"open": int(flags or 0)},
    }
