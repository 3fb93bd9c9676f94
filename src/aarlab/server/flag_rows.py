"""Findings as database rows: evidence as strict JSON, and every text cleaned of what a database
refuses, so that no finding can make the run it belongs to unstorable.

Findings carry text the submitted code chose (audit events arrive on the child's result pipe, and a
child can forge them): an event name longer than the ``kind`` column or holding a NUL made PostgreSQL
refuse the whole flush, and the worker's error text then quoted the other findings' sealed figures to
the agent. Here a kind is clipped to its column and NUL is replaced in every string.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aarlab.oversight.flags import Flag
from aarlab.server.models import ReviewFlag

#: The ``flags.kind`` column's width (``String(100)`` in :class:`~aarlab.server.models.ReviewFlag`).
KIND_CHARS = 100


def finite(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing, NaN or infinite."""
    return None if x is None or not math.isfinite(x) else float(x)


def clean_text(text: str) -> str:
    """``text`` with every NUL replaced by U+FFFD (PostgreSQL stores no NUL in text or JSON)."""
    return text.replace("\x00", "\ufffd")


def jsonable(value: Any) -> Any:
    """Evidence as strict JSON (numpy values to Python, NaN/inf to null: PostgreSQL's JSON rejects NaN;
    NUL in any string or key replaced, see :func:`clean_text`)."""
    if isinstance(value, dict):
        return {clean_text(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, (int, bool)):
        return value
    return clean_text(str(value))


def flag_row(flag: Flag, agent_id: int, task: str, result_id: int | None) -> ReviewFlag:
    """The open review-queue row of ``flag`` (kind clipped to its column, texts cleaned)."""
    return ReviewFlag(
        result_id=result_id,
        agent_id=agent_id,
        task=task,
        kind=clean_text(flag.kind)[:KIND_CHARS],
        severity=flag.severity,
        summary=clean_text(flag.summary),
        evidence=jsonable(flag.evidence),
        status="open",
    )
