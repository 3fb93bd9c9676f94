"""Trusted entry functions that run *inside* the sandbox child (after limits and audit hooks are on).

They load the method from the snapshot folder and run it on a label-free verification bundle through
the ordinary method contract. ``student="random"`` swaps the strong student for random features of the
same shape (the student ablation), decided here, inside the sandbox, where the method cannot see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from aarlab.testbed.bundle import run_on_bundle


def method_job(
    bundle: str,
    method: str,
    config: dict[str, Any] | None,
    seed: int,
    student: Literal["real", "random"] = "real",
) -> dict[str, float]:
    """Predictions {eval id: P(True)} of the method on the bundle (optionally with a random student)."""
    return run_on_bundle(Path(bundle), method, config, seed=seed, student=student)


def method_jobs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several runs in one child (one interpreter start for a seed's normal run and its ablations).

    Each run's failure is recorded on its own, so an ablation that breaks the method cannot hide the
    normal run's result (and the reverse).
    """
    out: list[dict[str, Any]] = []
    for run in runs:
        try:
            out.append({"ok": True, "predictions": method_job(**run)})
        except Exception as e:  # untrusted code: report, keep going
            out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return out
