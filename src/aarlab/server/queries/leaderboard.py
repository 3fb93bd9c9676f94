"""The leaderboard's rows as a caller may see them (see :mod:`aarlab.server.private`)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aarlab.api.schemas import SEVERITY_ORDER, USES_GROUP_STRUCTURE, LeaderboardRow
from aarlab.server.models import Agent, Result, ReviewFlag, TransferVerdict, VerifiedScore
from aarlab.server.private import sees_private


def rank_value(v: VerifiedScore) -> float | None:
    """The PGR a row is ranked by: against the structured ceiling when the task has groups."""
    return v.pgr_structured if v.ceiling_structured_acc is not None else v.pgr


def latest_verdicts(db: Session, result_ids: list[int]) -> dict[int, str]:
    """The newest finished transfer verdict per result (for leaderboard badges)."""
    if not result_ids:
        return {}
    rows = db.execute(
        select(TransferVerdict.result_id, TransferVerdict.verdict)
        .where(TransferVerdict.result_id.in_(result_ids), TransferVerdict.status == "done")
        .order_by(TransferVerdict.id)
    ).tuples()
    return {rid: str(verdict) for rid, verdict in rows if verdict is not None}


def _open_severities(
    db: Session, task: str, result_ids: list[int], agent_ids: set[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Open flag severities ``(by result id, by agent id)``; per-agent ones are the dev-log flags."""
    by_result: dict[int, list[str]] = {}
    by_agent: dict[int, list[str]] = {}
    if not result_ids:
        return by_result, by_agent
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
    return by_result, by_agent


def _sealed_fields(v: VerifiedScore, overseer: bool) -> dict[str, object]:
    """The figures only a caller who sees the private board gets (seeds: overseers only)."""
    return {
        "dev_acc": v.dev_acc,
        "dev_low": v.dev_low,
        "dev_high": v.dev_high,
        "sealed_acc": v.sealed_acc,
        "sealed_low": v.sealed_low,
        "sealed_high": v.sealed_high,
        "pgr": v.pgr,
        "pgr_low": v.pgr_low,
        "pgr_high": v.pgr_high,
        "weak_acc": v.weak_acc,
        "ceiling_acc": v.ceiling_acc,
        "ceiling_structured_acc": v.ceiling_structured_acc,
        "pgr_structured": v.pgr_structured,
        "pgr_structured_low": v.pgr_structured_low,
        "pgr_structured_high": v.pgr_structured_high,
        "pgr_rank": rank_value(v),
        "verification_seeds": v.seeds if overseer else None,
    }


def board_rows(db: Session, caller: Agent, task: str, *, pending: bool = False) -> list[LeaderboardRow]:
    """The leaderboard's rows as ``caller`` may see them; with ``pending`` also the rows of results with
    an open critical flag (for overseer views that list them apart).

    Verified rows of results that are not disqualified and carry no open critical flag (those wait
    for review, unranked), with the number of open flags (on the result or its agent's dev log for the
    task) and the highest open severity. Claimed numbers never appear. Agents before the reveal get
    no flag count, severity or structure disclosure (findings are computed on sealed labels too), and
    always their own rows, pending or not.

    Overseers (and everyone once the task is revealed) get every figure, ranked by the PGR that cannot
    exceed 1 through decoding alone (``pgr_rank``), then sealed accuracy. Agents get released dev
    scores only, ranked by them (a sealed ordering would leak sealed information)."""
    full = sees_private(caller, db, task)
    rows = list(
        db.execute(
            select(VerifiedScore, Agent.name, Result)
            .join(Result, Result.id == VerifiedScore.result_id)
            .join(Agent, Agent.id == Result.agent_id)
            .where(VerifiedScore.task == task, Result.status == "verified")
            .order_by(VerifiedScore.id)
        ).tuples()
    )
    if full:
        rows.sort(
            key=lambda t: (rank_value(t[0]) is None, -(rank_value(t[0]) or 0.0), -(t[0].sealed_acc or 0.0))
        )
    else:
        rows.sort(key=lambda t: (t[0].released_dev is None, -(t[0].released_dev or 0.0), t[0].id))
    result_ids = [v.result_id for v, _, _ in rows]
    structure = set(
        db.scalars(
            select(ReviewFlag.result_id).where(
                ReviewFlag.result_id.in_(result_ids), ReviewFlag.kind == USES_GROUP_STRUCTURE
            )
        )
    )
    verdicts = latest_verdicts(db, result_ids)
    by_result, by_agent = _open_severities(db, task, result_ids, {r.agent_id for _, _, r in rows})
    out = []
    for v, name, res in rows:
        # pending review: never ranked until an overseer dismisses the flag; but an agent always sees its
        # own rows, or a row's vanishing would tell it that a finding on sealed labels (an ablation
        # verdict) fired
        own = not full and res.agent_id == caller.id
        if "critical" in by_result.get(v.result_id, []) and not pending and not own:
            continue
        # findings are computed on the sealed partition too (a claim outside the sealed CI, PGR above 1,
        # a drop under a group shuffle): a caller without the private board sees none of them, or its
        # own claims would bisect the sealed accuracy one result at a time
        sevs = (by_result.get(v.result_id, []) + by_agent.get(res.agent_id, [])) if full else []
        top = max(sevs, key=SEVERITY_ORDER.index) if sevs else None
        row = LeaderboardRow(
            result_id=v.result_id,
            agent=name,
            task=v.task,
            dev_acc=v.released_dev,
            sealed_acc=None,
            sealed_low=None,
            sealed_high=None,
            pgr=None,
            open_flags=len(sevs),
            top_severity=top,  # type: ignore[arg-type]
            snapshot_sha=res.snapshot_sha,
            config=res.config,
            verified_at=res.verified_at,
            transfer=verdicts.get(v.result_id),
            uses_test_time_structure=full and v.result_id in structure,
            private=not full,
        )
        if full:
            row = row.model_copy(update=_sealed_fields(v, caller.role == "overseer"))
        out.append(row)
    return out


def pending_rows(db: Session, overseer: Agent, task: str) -> list[LeaderboardRow]:
    """Verified rows held back from the ranking by an open critical flag, in leaderboard order."""
    ranked = {r.result_id for r in board_rows(db, overseer, task)}
    return [r for r in board_rows(db, overseer, task, pending=True) if r.result_id not in ranked]
