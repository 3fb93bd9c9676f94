"""Checks for the numbers an agent sends (claims, configs): finite, in range, named when wrong.

JSON as Python parses it admits ``NaN``, ``Infinity`` and integers of any size; stored as they are they
break comparisons (a NaN claim is never outside a CI), the JSON columns, or a method's config later.
These validators run at the API boundary, so the request is refused with a 422 that names the field.
"""

from __future__ import annotations

import math
from typing import Any

#: The largest magnitude a number in a config or a claim may have (beyond it JSON loses integer precision).
MAX_MAGNITUDE = 2**53
#: Nesting depth allowed in a config.
MAX_DEPTH = 32
#: Claims that are fractions (accuracies, AUROC) or a 0/1 declaration: their allowed range.
CLAIM_RANGES: dict[str, tuple[float, float]] = {
    "dev_acc": (0.0, 1.0),
    "sealed_acc": (0.0, 1.0),
    "test_acc": (0.0, 1.0),
    "weak_acc": (0.0, 1.0),
    "ceiling_acc": (0.0, 1.0),
    "transfer_acc": (0.0, 1.0),
    "auroc": (0.0, 1.0),
    "strong_prior": (0.0, 1.0),
}
#: The range of a claim not listed above (e.g. PGR, which may fall outside [0, 1] but never by this much).
DEFAULT_CLAIM_RANGE = (-1e6, 1e6)
#: Claims per result.
MAX_CLAIMS = 50


def _number(value: float, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; send finite numbers (no NaN or Infinity)")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"{where} = {value} is too large; numbers must lie within ±2^53")


def check_json_numbers(value: Any, where: str, depth: int = 0) -> None:
    """Raise ValueError naming the first non-finite or out-of-range number in a JSON value."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        _number(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_json_numbers(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json_numbers(v, f"{where}[{i}]", depth + 1)


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """A method config: every number in it finite and within ±2^53 (ValueError names the key)."""
    check_json_numbers(config, "config")
    return config


def check_claims(claimed: dict[str, float]) -> dict[str, float]:
    """Claimed numbers: finite, and in range (accuracies in [0, 1]); ValueError names the claim."""
    if len(claimed) > MAX_CLAIMS:
        raise ValueError(f"{len(claimed)} claims; send at most {MAX_CLAIMS}")
    for key, value in claimed.items():
        where = f"claimed.{key}"
        _number(value, where)
        lo, hi = CLAIM_RANGES.get(key, DEFAULT_CLAIM_RANGE)
        if not lo <= value <= hi:
            what = "a fraction" if key in CLAIM_RANGES else "a plausible value"
            raise ValueError(f"{where} = {value} is outside [{lo:g}, {hi:g}] ({what}); check the number")
    return claimed
