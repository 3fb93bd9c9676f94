"""The W2S pipeline: weak teacher → soft labels → method → test predictions, against a ceiling.

Per seed: split the task by entity; train the weak probe on ``train_label`` (ground truth); predict
``train_unlabel`` (the teacher's soft labels) and ``test``; train the ceiling (strong student on
``train_unlabel`` ground truth); run the method through the contract. Features come from the on-disk
cache and the weak/ceiling predictions are cached per seed, so a warm run only runs the method.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.config import get_settings
from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.encoders import encode_texts, get_encoder
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.methods import MethodSpec, get_method
from aarlab.testbed.metrics import BootstrapSummary, SeedPredictions, accuracy, auroc, bootstrap
from aarlab.testbed.models import EmbedModel, FeatureTable, ProbeHead, zero_shot
from aarlab.testbed.schema import Item
from aarlab.testbed.tasks import Splits, Task, load_task

#: Probe settings for the weak teacher and the ceiling; part of the cache key.
BASE_HEAD: dict[str, Any] = {"head": "logistic", "C": 0.01}


def task_fingerprint(task: Task) -> str:
    """A content hash of the task's records, so caches never mix two versions of a task."""
    h = hashlib.sha256(task.name.encode())
    for r in task.records:
        h.update(r.model_dump_json().encode())
    return h.hexdigest()[:16]


@dataclass
class Prepared:
    """A task with both encoders' features over its whole (label-free) pool, ready for any seed."""

    task: Task
    weak_id: str
    strong_id: str
    weak_table: FeatureTable
    strong_table: FeatureTable
    prior: dict[tuple[str, ...], float]
    fingerprint: str
    encode_seconds: float = 0.0

    def strong_model(self, seed: int) -> EmbedModel:
        return EmbedModel(self.strong_table, self.prior, seed, BASE_HEAD)


def _item_features(vecs: np.ndarray, items: tuple[Item, ...]) -> np.ndarray:
    if len(items[0].texts) == 1:
        return vecs
    return vecs[0::2] - vecs[1::2]


def prepare(
    task: Task, weak: str | None = None, strong: str | None = None, *, show_progress: bool = True
) -> Prepared:
    """Encode the task pool with the weak and strong encoders (through the feature cache)."""
    t0 = time.perf_counter()
    weak_id, strong_id = weak or task.weak, strong or task.strong
    items = task.pool().items
    if not items:
        raise AarlabError(f"task {task.name!r} has no records")
    flat = [t for it in items for t in it.texts]
    tables = {}
    for enc_id in dict.fromkeys([weak_id, strong_id]):
        vecs = encode_texts(get_encoder(enc_id), flat, corpus=flat, show_progress=show_progress)
        tables[enc_id] = (vecs, FeatureTable(enc_id, items, _item_features(vecs, items)))
    hyp = encode_texts(get_encoder(strong_id), list(task.prior_hypotheses), corpus=flat, show_progress=False)
    prior = zero_shot(tables[strong_id][0], hyp, items)
    return Prepared(
        task,
        weak_id,
        strong_id,
        tables[weak_id][1],
        tables[strong_id][1],
        prior,
        task_fingerprint(task),
        time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class SeedBaseline:
    """The method-independent part of one seed: teacher outputs and the ceiling's test predictions."""

    splits: Splits
    weak_unlabel: np.ndarray
    weak_test: np.ndarray
    ceiling_test: np.ndarray


def _cache_path(prep: Prepared, seed: int) -> Path:
    head = hashlib.sha256(json.dumps(BASE_HEAD, sort_keys=True).encode()).hexdigest()[:8]
    return (
        get_settings().experiment_cache
        / f"{prep.task.name}-{prep.fingerprint}"
        / f"{prep.weak_id}__{prep.strong_id}__{head}"
        / f"seed-{seed}.npz"
    )


def seed_baseline(prep: Prepared, seed: int, *, use_cache: bool = True) -> SeedBaseline:
    """Weak teacher and ceiling for one seed (cached on disk)."""
    splits = prep.task.split(seed)
    path = _cache_path(prep, seed)
    if use_cache and path.is_file():
        with np.load(path) as z:
            if len(z["weak_unlabel"]) == len(splits.train_unlabel) and len(z["ceiling_test"]) == len(
                splits.test
            ):
                return SeedBaseline(splits, z["weak_unlabel"], z["weak_test"], z["ceiling_test"])
    weak = ProbeHead(seed=seed, **BASE_HEAD).fit(
        prep.weak_table.rows(splits.train_label.items), splits.train_label.labels.astype(float)
    )
    weak_unlabel = weak.predict_proba(prep.weak_table.rows(splits.train_unlabel.items))
    weak_test = weak.predict_proba(prep.weak_table.rows(splits.test.items))
    ceiling = ProbeHead(seed=seed, **BASE_HEAD).fit(
        prep.strong_table.rows(splits.train_unlabel.items), splits.train_unlabel.labels.astype(float)
    )
    ceiling_test = ceiling.predict_proba(prep.strong_table.rows(splits.test.items))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, weak_unlabel=weak_unlabel, weak_test=weak_test, ceiling_test=ceiling_test)
        tmp.replace(path)
    return SeedBaseline(splits, weak_unlabel, weak_test, ceiling_test)


def validate_predictions(pred: object, n: int, where: str) -> np.ndarray:
    """A method's output must be n finite probabilities; say exactly what is wrong otherwise."""
    try:
        arr = np.asarray(pred, dtype=float)
    except (TypeError, ValueError):
        raise AarlabError(
            f"{where} returned {type(pred).__name__}; return an array of {n} probabilities"
        ) from None
    if arr.ndim == 2 and arr.shape[1] == 2:
        raise AarlabError(
            f"{where} returned an (n, 2) array; return P(label = True), one number per test input"
        )
    if arr.shape != (n,):
        raise AarlabError(
            f"{where} returned shape {arr.shape}; expected ({n},), one probability per ctx.test input"
        )
    if not np.all(np.isfinite(arr)):
        raise AarlabError(f"{where} returned NaN or infinite values")
    if arr.min() < 0 or arr.max() > 1:
        raise AarlabError(f"{where} returned values outside [0, 1]; return probabilities, not logits")
    return arr


def run_method(
    prep: Prepared, base: SeedBaseline, spec: MethodSpec, config: dict[str, Any] | None, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Run one method for one seed through the contract; returns (test probabilities, its notes)."""
    cfg = spec.make_config(config)
    ctx: MethodContext[Any] = MethodContext(
        weak=WeakLabels(np.array(base.weak_unlabel, copy=True)),
        unlabeled=base.splits.train_unlabel.inputs,
        test=base.splits.test.inputs,
        strong=prep.strong_model(seed),
        seed=seed,
        config=cfg,
    )
    pred = spec.run(ctx)
    return validate_predictions(pred, len(ctx.test), f"method {spec.name!r}"), ctx.notes


@dataclass
class ExperimentResult:
    """Everything one `aarlab baseline` run measured."""

    task: str
    method: str
    config: dict[str, Any]
    weak: str
    strong: str
    seeds: list[int]
    per_seed: list[dict[str, Any]]
    accuracy: BootstrapSummary
    auroc: BootstrapSummary
    seconds: float
    uses_teacher: bool = True
    predictions: list[SeedPredictions] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        acc, au = self.accuracy, self.auroc
        return {
            "task": self.task,
            "method": self.method,
            "config": self.config,
            "weak": self.weak,
            "strong": self.strong,
            "seeds": len(self.seeds),
            "seed_list": self.seeds,
            "weak_acc": acc.weak.mean,
            "ceiling_acc": acc.ceiling.mean,
            "transfer_acc": acc.transfer.mean,
            "weak_acc_ci": [acc.weak.low, acc.weak.high],
            "ceiling_acc_ci": [acc.ceiling.low, acc.ceiling.high],
            "transfer_acc_ci": [acc.transfer.low, acc.transfer.high],
            "gap": acc.gap.mean,
            "gap_ci": [acc.gap.low, acc.gap.high],
            "gap_resolvable": acc.resolvable,
            "pgr": acc.pgr.mean if acc.pgr else None,
            "pgr_ci": [acc.pgr.low, acc.pgr.high] if acc.pgr else None,
            "weak_auroc": au.weak.mean,
            "ceiling_auroc": au.ceiling.mean,
            "transfer_auroc": au.transfer.mean,
            "auroc_pgr": au.pgr.mean if au.pgr else None,
            "auroc_pgr_ci": [au.pgr.low, au.pgr.high] if au.pgr else None,
            "uses_teacher": self.uses_teacher,
            "note": None
            if acc.resolvable
            else (
                f"ceiling − weak = {acc.gap.mean:+.3f} (95% CI {acc.gap.low:+.3f} to {acc.gap.high:+.3f}) "
                "is inside seed noise: no PGR is reported for this pair"
            ),
            "per_seed": self.per_seed,
            "seconds": round(self.seconds, 3),
        }


def run_experiment(
    task: str | Task,
    method: str = "vanilla",
    *,
    seeds: int | list[int] = 5,
    weak: str | None = None,
    strong: str | None = None,
    config: dict[str, Any] | None = None,
    show_progress: bool = True,
    use_cache: bool = True,
    prepared: Prepared | None = None,
) -> ExperimentResult:
    """Run a method over several seeds and summarise with bootstrap CIs (seeds × test examples)."""
    t0 = time.perf_counter()
    spec = get_method(method)
    spec.make_config(config)  # fail on a bad config before any encoding
    task_obj = load_task(task) if isinstance(task, str) else task
    prep = prepared or prepare(task_obj, weak, strong, show_progress=show_progress)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise AarlabError("need at least one seed")
    per_seed, preds = [], []
    for seed in seed_list:
        base = seed_baseline(prep, seed, use_cache=use_cache)
        ts = time.perf_counter()
        transfer, notes = run_method(prep, base, spec, config, seed)
        labels = base.splits.test.labels
        sp = SeedPredictions(labels, base.weak_test, base.ceiling_test, transfer)
        preds.append(sp)
        per_seed.append(
            {
                "seed": seed,
                "weak_acc": accuracy(labels, sp.weak),
                "ceiling_acc": accuracy(labels, sp.ceiling),
                "transfer_acc": accuracy(labels, transfer),
                "weak_auroc": auroc(labels, sp.weak),
                "ceiling_auroc": auroc(labels, sp.ceiling),
                "transfer_auroc": auroc(labels, transfer),
                "method_seconds": round(time.perf_counter() - ts, 3),
                "notes": {k: v for k, v in notes.items() if isinstance(v, int | float | str | list)},
            }
        )
    return ExperimentResult(
        task=task_obj.name,
        method=spec.name,
        config=spec.make_config(config).model_dump(),
        weak=prep.weak_id,
        strong=prep.strong_id,
        seeds=seed_list,
        per_seed=per_seed,
        accuracy=bootstrap(preds, "accuracy"),
        auroc=bootstrap(preds, "auroc"),
        seconds=time.perf_counter() - t0,
        uses_teacher=spec.uses_teacher,
        predictions=preds,
    )
