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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.config import get_settings
from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.encoders import encode_texts, get_encoder
from aarlab.testbed.errors import AarlabError, unknown
from aarlab.testbed.methods import MethodSpec, get_method
from aarlab.testbed.methods.failure import is_user_method, method_failed
from aarlab.testbed.metrics import BootstrapSummary, SeedPredictions, accuracy, auroc, bootstrap_all
from aarlab.testbed.models import EmbedModel, FeatureTable, StudentModel, zero_shot
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


ModelFactory = Callable[[int], StudentModel]


@dataclass
class Prepared:
    """A task with its weak and strong models ready to train for any seed (features already cached).

    ``weak_model(seed)`` and ``strong_model(seed)`` return *untrained* models behind the
    :class:`StudentModel` interface, so the pipeline (and every method) is the same whatever the backend.
    """

    task: Task
    backend: str
    weak_id: str
    strong_id: str
    weak_model: ModelFactory
    strong_model: ModelFactory
    fingerprint: str
    encode_seconds: float = 0.0


def _item_features(vecs: np.ndarray, items: tuple[Item, ...]) -> np.ndarray:
    if len(items[0].texts) == 1:
        return vecs
    return vecs[0::2] - vecs[1::2]


def prepare_embed(task: Task, weak: str, strong: str, *, show_progress: bool = True) -> Prepared:
    """The ``embed`` backend: encode the task pool with both frozen encoders (through the feature cache)."""
    t0 = time.perf_counter()
    items = task.pool().items
    flat = [t for it in items for t in it.texts]
    vecs: dict[str, np.ndarray] = {}
    tables: dict[str, FeatureTable] = {}
    for enc_id in dict.fromkeys([weak, strong]):
        vecs[enc_id] = encode_texts(get_encoder(enc_id), flat, corpus=flat, show_progress=show_progress)
        tables[enc_id] = FeatureTable(enc_id, items, _item_features(vecs[enc_id], items))
    hyp = encode_texts(get_encoder(strong), list(task.prior_hypotheses), corpus=flat, show_progress=False)
    prior = zero_shot(vecs[strong], hyp, items)
    weak_prior = prior if weak == strong else {}

    def weak_model(seed: int) -> StudentModel:
        return EmbedModel(tables[weak], weak_prior, seed, BASE_HEAD)

    def strong_model(seed: int) -> StudentModel:
        return EmbedModel(tables[strong], prior, seed, BASE_HEAD)

    return Prepared(
        task,
        "embed",
        weak,
        strong,
        weak_model,
        strong_model,
        task_fingerprint(task),
        time.perf_counter() - t0,
    )


#: Model backends by name: each turns (task, weak id, strong id) into a :class:`Prepared`.
BACKENDS: dict[str, Callable[..., Prepared]] = {"embed": prepare_embed}


def register_backend(name: str, prepare_fn: Callable[..., Prepared]) -> None:
    """Make a model backend available to ``prepare(..., backend=name)``."""
    BACKENDS[name] = prepare_fn


def prepare(
    task: Task,
    weak: str | None = None,
    strong: str | None = None,
    *,
    backend: str = "embed",
    show_progress: bool = True,
) -> Prepared:
    """Get the task's weak and strong models ready (``embed``: frozen encoders + probe heads)."""
    if not task.records:
        raise AarlabError(f"task {task.name!r} has no records")
    if backend == "lm" and backend not in BACKENDS:  # lazy: torch/peft load only when asked for
        import aarlab.testbed.lm  # noqa: F401  (registers the backend)
    if backend not in BACKENDS:
        raise unknown("backend", backend, list(BACKENDS))
    return BACKENDS[backend](task, weak or task.weak, strong or task.strong, show_progress=show_progress)


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
        / f"{prep.backend}__{prep.weak_id}__{prep.strong_id}__{head}"
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
    tl, tu, te = splits.train_label, splits.train_unlabel, splits.test
    weak = prep.weak_model(seed).fit(tl.inputs, tl.labels.astype(float))
    weak_unlabel = weak.predict_proba(tu.inputs)
    weak_test = weak.predict_proba(te.inputs)
    ceiling = prep.strong_model(seed).fit(tu.inputs, tu.labels.astype(float))
    ceiling_test = ceiling.predict_proba(te.inputs)
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
    try:
        pred = spec.run(ctx)
    except Exception as e:
        if not is_user_method(spec.source):
            raise  # a built-in method's failure is aarlab's bug: keep the whole traceback
        # the user's own code: its frames, not a trace through aarlab's internals
        raise method_failed(spec.name, spec.source, e, f"running run(ctx) on seed {seed}") from e
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
    backend: str = "embed",
) -> ExperimentResult:
    """Run a method over several seeds and summarise with bootstrap CIs (seeds × test examples)."""
    t0 = time.perf_counter()
    spec = get_method(method)
    spec.make_config(config)  # fail on a bad config before any encoding
    task_obj = load_task(task) if isinstance(task, str) else task
    prep = prepared or prepare(task_obj, weak, strong, backend=backend, show_progress=show_progress)
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
    summary = bootstrap_all(preds)
    return ExperimentResult(
        task=task_obj.name,
        method=spec.name,
        config=spec.make_config(config).model_dump(),
        weak=prep.weak_id,
        strong=prep.strong_id,
        seeds=seed_list,
        per_seed=per_seed,
        accuracy=summary["accuracy"],
        auroc=summary["auroc"],
        seconds=time.perf_counter() - t0,
        uses_teacher=spec.uses_teacher,
        predictions=preds,
    )
