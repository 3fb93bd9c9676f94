"""Which leaderboard rows are ranked: a result with an open *critical* flag waits for review apart.

The leaderboard API lists every verified, non-disqualified row with its open flags; what people read
(the dashboard, ``aarlab demo``/``research`` output, the CSV/JSON exports) ranks only rows without an
open critical flag, and lists the others as "pending review" until an overseer dismisses the flag (the
row is ranked again) or disqualifies the result (it leaves the board).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

#: The open-flag severity that keeps a result out of the ranking until it is reviewed.
BLOCKING_SEVERITY = "critical"


R = TypeVar("R")


def _severity(row: Any) -> Any:
    return row.get("top_severity") if isinstance(row, dict) else getattr(row, "top_severity", None)


def pending_review(row: Any) -> bool:
    """True when the row (a ``LeaderboardRow`` or its JSON dict) has an open critical flag."""
    return _severity(row) == BLOCKING_SEVERITY


def split_ranked(rows: Sequence[R]) -> tuple[list[R], list[R]]:
    """``(ranked, pending)``: rows without an open critical flag in their order, and the others."""
    ranked = [r for r in rows if not pending_review(r)]
    pending = [r for r in rows if pending_review(r)]
    return ranked, pending
