"""Everything the result page (``/ui/results/{id}``) shows about one result, gathered from the database
and the code store: the method and its code, config, parent and diff, verification seeds and per-seed
scores, ablations, flags with evidence, and the transfer verdicts per suite.

This is an overseer view: it holds sealed figures, so only overseer-only routes may render it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aarlab.server.codestore import CodeStore
from aarlab.server.dashboard.snapshots import (
    CodeFile,
    ConfigChange,
    FileDiff,
    diff_config,
    diff_files,
    method_name,
    read_files,
)
from aarlab.server.models import Agent, Result, ReviewFlag, TransferVerdict, VerifiedScore

#: How many earlier results of the task are searched for an inferred parent.
PARENT_WINDOW = 500
_NAMES: dict[str, str] = {}


@dataclass(frozen=True)
class Parent:
    """The result this one started from: named by the submitter, or inferred (nearest earlier config)."""

    result: Result
    agent: str
    method: str
    inferred: bool
    config_changes: list[ConfigChange]
    file_diffs: list[FileDiff]


@dataclass(frozen=True)
class SuiteRow:
    name: str
    task: str
    status: str
    delta_pgr: float | None
    delta_pgr_ci: tuple[float, float] | None
    pgr_method: float | None
    pgr_baseline: float | None
    p_holm: float | None
    power: float | None
    note: str


@dataclass(frozen=True)
class TransferRun:
    id: int
    status: str
    verdict: str | None
    reason: str
    fingerprint: str | None
    suites: list[SuiteRow]


@dataclass(frozen=True)
class FlagView:
    id: int
    kind: str
    severity: str
    status: str
    summary: str
    scope: str  # "this result" or "agent's dev log"
    evidence: str  # pretty JSON
    note: str | None


@dataclass
class ResultView:
    result: Result
    agent: str
    method: str
    files: list[CodeFile]
    snapshot_error: str | None
    config_json: str
    claimed: dict[str, float]
    score: VerifiedScore | None
    seeds: list[Any]
    per_seed: list[dict[str, Any]]
    ablation: dict[str, Any] | None
    parent: Parent | None
    flags: list[FlagView] = field(default_factory=list)
    transfers: list[TransferRun] = field(default_factory=list)


def snapshot_files(store: CodeStore, sha: str) -> tuple[list[CodeFile], str | None]:
    """The snapshot's files, or ``([], why)`` when it cannot be read (missing or damaged)."""
    try:
        return list(read_files(store.get(sha))), None
    except Exception as e:  # a missing object in the store, or a damaged archive: say so on the page
        return [], f"snapshot {sha} could not be read: {e}"


def method_for(store: CodeStore, sha: str) -> str:
    """The method's name for a snapshot (cached by sha: snapshots never change)."""
    if sha not in _NAMES:
        files, err = snapshot_files(store, sha)
        if err is not None:
            return "unreadable snapshot"
        if len(_NAMES) > 4096:
            _NAMES.clear()
        _NAMES[sha] = method_name(files)
    return _NAMES[sha]


def _distance(a: Result, b: Result) -> tuple[int, int]:
    keys = set(a.config) | set(b.config)
    changed = sum(1 for k in keys if a.config.get(k) != b.config.get(k))
    return changed + (a.snapshot_sha != b.snapshot_sha), -b.id


def find_parent(db: Session, r: Result) -> tuple[Result | None, bool]:
    """``(parent, inferred)``: the named parent, else the earlier result of the task whose snapshot and
    config differ least from this one (ties: the newest), else ``(None, False)``."""
    if r.parent_id is not None:
        return db.get(Result, r.parent_id), False
    earlier = list(
        db.scalars(
            select(Result)
            .where(Result.task == r.task, Result.id < r.id)
            .order_by(Result.id.desc())
            .limit(PARENT_WINDOW)
        )
    )
    if not earlier:
        return None, False
    return min(earlier, key=lambda b: _distance(r, b)), True


def _float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) else None


def _suites(report: dict[str, Any]) -> list[SuiteRow]:
    out = []
    for s in report.get("suites") or []:
        if not isinstance(s, dict):
            continue
        raw = s.get("suite")
        suite: dict[str, Any] = raw if isinstance(raw, dict) else {"name": raw}
        ci = s.get("delta_pgr_ci")
        lo, hi = (ci[0], ci[1]) if isinstance(ci, list) and len(ci) == 2 else (None, None)
        out.append(
            SuiteRow(
                name=str(suite.get("name") or "?"),
                task=str(suite.get("task", "")),
                status=str(s.get("status", "?")),
                delta_pgr=_float(s.get("delta_pgr")),
                delta_pgr_ci=(float(lo), float(hi))
                if isinstance(lo, int | float) and isinstance(hi, int | float)
                else None,
                pgr_method=_float(s.get("pgr_method")),
                pgr_baseline=_float(s.get("pgr_baseline")),
                p_holm=_float(s.get("p_holm")),
                power=_float(s.get("power")),
                note=str(s.get("note") or ""),
            )
        )
    return out


def result_view(db: Session, store: CodeStore, result_id: int) -> ResultView | None:
    """Everything about result ``result_id`` for its page, or None when there is no such result."""
    r = db.get(Result, result_id)
    if r is None:
        return None
    names = dict(db.execute(select(Agent.id, Agent.name)).tuples().all())
    files, err = snapshot_files(store, r.snapshot_sha)
    score = db.scalars(
        select(VerifiedScore).where(VerifiedScore.result_id == r.id).order_by(VerifiedScore.id.desc())
    ).first()
    details: dict[str, Any] = (score.details if score is not None else None) or {}
    parent_row, inferred = find_parent(db, r)
    parent = None
    if parent_row is not None:
        parent_files, _ = snapshot_files(store, parent_row.snapshot_sha)
        parent = Parent(
            result=parent_row,
            agent=names.get(parent_row.agent_id, "?"),
            method=method_name(parent_files) if parent_files else "unreadable snapshot",
            inferred=inferred,
            config_changes=diff_config(dict(parent_row.config or {}), dict(r.config or {})),
            file_diffs=diff_files(parent_files, files),
        )
    flag_rows = db.scalars(
        select(ReviewFlag)
        .where(
            or_(
                ReviewFlag.result_id == r.id,
                (ReviewFlag.result_id.is_(None))
                & (ReviewFlag.agent_id == r.agent_id)
                & (ReviewFlag.task == r.task),
            )
        )
        .order_by(ReviewFlag.id)
    )
    flags = [
        FlagView(
            id=f.id,
            kind=f.kind,
            severity=f.severity,
            status=f.status,
            summary=f.summary,
            scope="this result" if f.result_id is not None else "agent's dev log",
            evidence=json.dumps(f.evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str),
            note=f.note,
        )
        for f in flag_rows
    ]
    transfers = [
        TransferRun(
            id=t.id,
            status=t.status,
            verdict=t.verdict,
            reason=t.reason or "",
            fingerprint=(t.report or {}).get("settings_hash"),
            suites=_suites(t.report or {}),
        )
        for t in db.scalars(
            select(TransferVerdict).where(TransferVerdict.result_id == r.id).order_by(TransferVerdict.id)
        )
    ]
    return ResultView(
        result=r,
        agent=names.get(r.agent_id, "?"),
        method=method_name(files) if files else "unreadable snapshot",
        files=files,
        snapshot_error=err,
        config_json=json.dumps(r.config or {}, indent=2, sort_keys=True, ensure_ascii=False),
        claimed=dict(r.claimed or {}),
        score=score,
        seeds=list(details.get("seeds") or []),
        per_seed=list(details.get("per_seed") or []),
        ablation=details.get("ablation") if isinstance(details.get("ablation"), dict) else None,
        parent=parent,
        flags=flags,
        transfers=transfers,
    )
