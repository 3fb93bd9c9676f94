"""One quota for everything an agent submits for scoring: a rate per minute and a budget per task.

Dev submissions and results are both scored queries against held-out labels, so both are bounded the
same way: at most ``per_minute`` of them in any 60 s (429 with ``Retry-After``) and ``budget`` per agent
and task (403). Call it under the agent's lock (``ServerState.agent_lock``) so that the count and the
insert that follows are one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.server.errors import Forbidden, RateLimited
from aarlab.server.models import DevSubmission, Result
from aarlab.server.settings import ServerSettings

#: The rate limit's window, seconds.
WINDOW_S = 60


@dataclass(frozen=True)
class Quota:
    """``what`` names the rows in the rate message ("dev submissions"), ``unit`` in the budget message
    ("submissions"); ``budget_name`` the budget ("dev budget"); ``when_spent`` says what to do once the
    budget is used up."""

    table: type[DevSubmission] | type[Result]
    what: str
    unit: str
    per_minute: int
    budget_name: str
    budget: int
    when_spent: str


def check_quota(db: Session, quota: Quota, agent_id: int, task: str, now: datetime) -> int:
    """How many rows the agent already has on ``task`` (under the budget, so one more is allowed).

    Raises :class:`RateLimited` (429) when ``per_minute`` rows were stored in the last 60 s, and
    :class:`Forbidden` (403) when the budget for the task is used up."""
    t = quota.table
    window = now - timedelta(seconds=WINDOW_S)
    # one row back (count and oldest), not every row of the window: the hot path of every dev submission
    n_recent, first = db.execute(
        select(func.count(), func.min(t.created_at)).where(t.agent_id == agent_id, t.created_at > window)
    ).one()
    if n_recent >= quota.per_minute:
        oldest = first if first.tzinfo else first.replace(tzinfo=UTC)
        raise RateLimited(
            f"rate limit: {quota.per_minute} {quota.what} per minute", (oldest - window).total_seconds()
        )
    used = int(
        db.scalar(select(func.count()).select_from(t).where(t.agent_id == agent_id, t.task == task)) or 0
    )
    if used >= quota.budget:
        raise Forbidden(
            f"{quota.budget_name} used up ({quota.budget} {quota.unit} on {task!r}); {quota.when_spent}"
        )
    return used


def dev_quota(cfg: ServerSettings) -> Quota:
    """Dev submissions: ``rate_per_minute`` a minute and ``dev_budget`` per agent and task."""
    spent = "submit a result for verified scoring instead"
    return Quota(DevSubmission, "dev submissions", "submissions", cfg.rate_per_minute, "dev budget",
                 cfg.dev_budget, spent)  # fmt: skip


def result_quota(cfg: ServerSettings) -> Quota:
    """Results: ``result_rate_per_minute`` a minute and ``result_budget`` per agent and task (each
    verified result is a scored query, so both are bounded)."""
    spent = "ask an overseer to raise it (AARLAB_SERVER_RESULT_BUDGET)"
    return Quota(Result, "results", "results", cfg.result_rate_per_minute, "result budget",
                 cfg.result_budget, spent)  # fmt: skip
