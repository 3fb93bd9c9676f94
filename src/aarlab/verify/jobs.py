"""Trusted entry functions that run *inside* the sandbox child (after limits and audit hooks are on).

They load the method from the snapshot folder and run it on a label-free verification bundle through
the ordinary method contract. ``student="random"`` swaps the strong student for random features of the
same shape (the student ablation), decided here, inside the sandbox, where the method cannot see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aarlab.testbed import bundle as bundle_mod
from aarlab.testbed.models import EmbedModel, FeatureTable
from aarlab.testbed.schema import Inputs


def method_job(
    bundle: str, method: str, config: dict[str, Any] | None, seed: int, student: str = "real"
) -> dict[str, float]:
    """Predictions {eval id: P(True)} of the method on the bundle (optionally with a random student)."""
    if student == "random":
        real = bundle_mod._strong_model

        def random_model(bundle: bundle_mod.Bundle, seed: int, show_progress: bool) -> EmbedModel:
            model = real(bundle, seed, show_progress)
            items = bundle.unlabeled.items + bundle.dev.items
            rng = np.random.default_rng(10_000 + seed)
            shape = model.features(Inputs(items)).shape
            table = FeatureTable("random", items, rng.standard_normal(shape).astype(np.float32))
            prior = {it.texts: float(v) for it, v in zip(items, rng.random(len(items)), strict=True)}
            return EmbedModel(table, prior, seed)

        bundle_mod._strong_model = random_model  # the child is a throwaway process
    return bundle_mod.run_on_bundle(Path(bundle), method, config, seed=seed)


def method_jobs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several runs in one child (one interpreter start for a seed's normal run and its ablations).

    Each run's failure is recorded on its own, so an ablation that breaks the method cannot hide the
    normal run's result (and the reverse).
    """
    out: list[dict[str, Any]] = []
    real = bundle_mod._strong_model
    for run in runs:
        bundle_mod._strong_model = real
        try:
            out.append({"ok": True, "predictions": method_job(**run)})
        except Exception as e:  # untrusted code: report, keep going
            out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return out
