"""The leaderboard as people read it: ranked rows and rows pending review, sorted and filtered by the
viewer's choice, and the same rows as CSV or JSON for export.

Rows come from the API's own query (:func:`aarlab.server.queries.leaderboard.board_rows`), so a viewer
sees what the API shows their role; this module only arranges them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aarlab.api.schemas import SEVERITY_ORDER, LeaderboardRow
from aarlab.server.dashboard.snapshots import config_summary
from aarlab.server.ranking import split_ranked

#: Sortable columns: query value -> (header, key). ``rank`` is the verified order (best sealed first).
SORTS: dict[str, tuple[str, Callable[[LeaderboardRow], Any]]] = {
    "rank": ("rank", lambda r: 0),
    "result": ("result", lambda r: r.result_id),
    "agent": ("agent", lambda r: r.agent.lower()),
    "dev": ("dev acc", lambda r: r.dev_acc),
    "sealed": ("sealed acc", lambda r: r.sealed_acc),
    "pgr": ("PGR", lambda r: r.pgr),
    "flags": (
        "open flags",
        lambda r: (r.open_flags, SEVERITY_ORDER.index(r.top_severity) if r.top_severity else -1),
    ),
    "transfer": ("transfer", lambda r: r.transfer or ""),
    "verified": ("verified", lambda r: r.verified_at),
}
FLAG_FILTERS = ("any", "none", "open")
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class BoardRow:
    """A leaderboard row with its rank (None: pending review) and its method's name."""

    rank: int | None
    row: LeaderboardRow
    method: str

    @property
    def config_text(self) -> str:
        return config_summary(self.row.config)


class BadQuery(ValueError):
    """A sort, order or filter value that is not one of the allowed ones (the message lists them)."""


def check_query(sort: str, order: str, flags: str) -> None:
    """Raise :class:`BadQuery` naming the allowed values when a query value is unknown."""
    if sort not in SORTS:
        raise BadQuery(f"unknown sort {sort!r}; use one of: {', '.join(SORTS)}")
    if order not in ORDERS:
        raise BadQuery(f"unknown order {order!r}; use asc or desc")
    if flags not in FLAG_FILTERS:
        raise BadQuery(f"unknown flags filter {flags!r}; use one of: {', '.join(FLAG_FILTERS)}")


def _matches(b: BoardRow, q: str) -> bool:
    q = q.strip().lower().lstrip("#")
    if not q:
        return True
    hay = [str(b.row.result_id), b.row.agent, b.method, b.config_text, b.row.transfer or ""]
    return any(q in h.lower() for h in hay)


def _sorted(rows: list[BoardRow], sort: str, order: str) -> list[BoardRow]:
    if sort == "rank":
        return rows if order == "asc" else list(reversed(rows))
    key = SORTS[sort][1]
    present = [b for b in rows if key(b.row) is not None]
    missing = [b for b in rows if key(b.row) is None]  # no value: always last
    present.sort(key=lambda b: key(b.row), reverse=order == "desc")
    return present + missing


def arrange(
    rows: list[LeaderboardRow],
    methods: dict[int, str],
    *,
    sort: str = "rank",
    order: str = "asc",
    q: str = "",
    flags: str = "any",
) -> tuple[list[BoardRow], list[BoardRow]]:
    """``(ranked, pending)`` after filtering and sorting; ranks are always the verified order.

    ``methods`` maps result id -> method name. Raises :class:`BadQuery` for an unknown value."""
    check_query(sort, order, flags)
    ranked_rows, pending_rows = split_ranked(rows)
    ranked = [BoardRow(k, r, methods.get(r.result_id, "?")) for k, r in enumerate(ranked_rows, 1)]
    pending = [BoardRow(None, r, methods.get(r.result_id, "?")) for r in pending_rows]

    def keep(b: BoardRow) -> bool:
        if flags == "none" and b.row.open_flags:
            return False
        if flags == "open" and not b.row.open_flags:
            return False
        return _matches(b, q)

    return (
        _sorted([b for b in ranked if keep(b)], sort, order),
        _sorted([b for b in pending if keep(b)], sort, order),
    )


EXPORT_COLUMNS = (
    "rank",
    "result_id",
    "agent",
    "method",
    "snapshot_sha",
    "config",
    "dev_acc",
    "dev_low",
    "dev_high",
    "sealed_acc",
    "sealed_low",
    "sealed_high",
    "pgr",
    "pgr_low",
    "pgr_high",
    "weak_acc",
    "ceiling_acc",
    "open_flags",
    "top_severity",
    "transfer",
    "verified_at",
)


def export_record(b: BoardRow) -> dict[str, Any]:
    """One row as a flat record: ``rank`` is ``"pending review"`` for a row held back by a flag."""
    r = b.row.model_dump(mode="json")
    out = {k: r.get(k) for k in EXPORT_COLUMNS if k in r}
    out["rank"] = b.rank if b.rank is not None else "pending review"
    out["method"] = b.method
    return {k: out.get(k) for k in EXPORT_COLUMNS}


def to_csv(rows: list[BoardRow]) -> str:
    """RFC 4180 CSV with a header row; ``config`` as JSON, times as ISO 8601 UTC."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for b in rows:
        rec = export_record(b)
        rec["config"] = json.dumps(rec["config"] or {}, sort_keys=True)
        w.writerow({k: "" if v is None else v for k, v in rec.items()})
    return buf.getvalue()


def to_json(task: str, ranked: list[BoardRow], pending: list[BoardRow], at: datetime) -> dict[str, Any]:
    return {
        "task": task,
        "exported_at": at.isoformat(),
        "ranked": [export_record(b) for b in ranked],
        "pending_review": [export_record(b) for b in pending],
    }
