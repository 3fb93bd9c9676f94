"""The one quota shared by dev submissions and results: the same rate window and budget count for both,
each with its own words (what is limited, what to do once the budget is spent)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aarlab.server.auth import add_agent
from aarlab.server.db import make_engine, migrate, session_factory, session_scope
from aarlab.server.errors import Forbidden, RateLimited
from aarlab.server.models import Agent, DevSubmission, Result, Snapshot
from aarlab.server.queries.quota import Quota, check_quota, dev_quota, result_quota
from aarlab.server.settings import ServerSettings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _dev(agent_id: int, task: str, at: datetime) -> DevSubmission:
    return DevSubmission(
        agent_id=agent_id, task=task, predictions=b"", score=0.5, reported_score=0.5, improved=False,
        created_at=at,
    )  # fmt: skip


def _result(agent_id: int, task: str, at: datetime) -> Result:
    return Result(
        agent_id=agent_id, task=task, snapshot_sha="a" * 64, config={}, claimed={}, status="queued",
        created_at=at,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("quota_of", "row", "rate_words", "budget_words"),
    [
        (
            dev_quota,
            _dev,
            "rate limit: 2 dev submissions per minute; retry in 41 s",
            "dev budget used up (3 submissions on 't'); submit a result for verified scoring instead",
        ),
        (
            result_quota,
            _result,
            "rate limit: 2 results per minute; retry in 41 s",
            "result budget used up (3 results on 't'); ask an overseer to raise it "
            "(AARLAB_SERVER_RESULT_BUDGET)",
        ),
    ],
)
def test_rate_then_budget(
    tmp_path: Path,
    quota_of: Callable[[ServerSettings], Quota],
    row: Callable[[int, str, datetime], DevSubmission | Result],
    rate_words: str,
    budget_words: str,
) -> None:
    cfg = ServerSettings(
        data_dir=tmp_path, rate_per_minute=2, dev_budget=3, result_rate_per_minute=2, result_budget=3
    )
    quota = quota_of(cfg)
    engine = make_engine(cfg.database_url)
    migrate(engine)
    with session_scope(session_factory(engine)) as db:
        add_agent(db, "a")
        agent = db.query(Agent).filter_by(name="a").one()
        db.add(Snapshot(sha256="a" * 64, size=1, agent_id=agent.id))
        db.flush()
        # one row long ago, on another task: it counts for neither the rate nor this task's budget
        db.add(row(agent.id, "other", NOW - timedelta(hours=1)))
        db.flush()
        assert check_quota(db, quota, agent.id, "t", NOW) == 0
        db.add(row(agent.id, "t", NOW - timedelta(seconds=19.5)))  # the oldest in the window
        db.add(row(agent.id, "t", NOW - timedelta(seconds=5)))
        db.flush()
        with pytest.raises(RateLimited) as rate:
            check_quota(db, quota, agent.id, "t", NOW)
        assert rate.value.status_code == 429 and rate.value.detail == rate_words
        assert rate.value.headers == {"Retry-After": "41"}  # 60 s window - 19.5 s, rounded up
        later = NOW + timedelta(minutes=2)
        assert check_quota(db, quota, agent.id, "t", later) == 2
        db.add(row(agent.id, "t", later))
        db.flush()
        with pytest.raises(Forbidden) as spent:
            check_quota(db, quota, agent.id, "t", later + timedelta(minutes=2))
        assert spent.value.status_code == 403 and spent.value.detail == budget_words
    engine.dispose()
