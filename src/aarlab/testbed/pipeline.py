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
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.config import get_settings
from aarlab.registry import Registry
from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.encoders import encode_texts, get_encoder
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.files import atomic_path
from aarlab.testbed.methods import MethodSpec, get_method
from aarlab.testbed.methods.blocks import group_exclusive
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


#: Model backends by name: each turns (task, weak id, strong id) into a :class:`Prepared`. ``lm`` registers
#: itself when ``aarlab.testbed.lm`` is imported (torch/peft load only when it is asked for).
BACKENDS: Registry[Callable[..., Prepared]] = Registry("backend")
BACKENDS.register("embed", prepare_embed)


def register_backend(name: str, prepare_fn: Callable[..., Prepared]) -> None:
    """Make a model backend available to ``prepare(..., backend=name)`` (a taken name raises ValueError)."""
    BACKENDS.register(name, prepare_fn)


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
    prepare_fn = BACKENDS.get(backend)
    return prepare_fn(task, weak or task.weak, strong or task.strong, show_progress=show_progress)


@dataclass(frozen=True)
class SeedBaseline:
    """The method-independent part of one seed: teacher outputs and the ceiling's test predictions."""

    splits: Splits
    weak_unlabel: np.ndarray
    weak_test: np.ndarray
    ceiling_test: np.ndarray


#: On a reference-format directory (fixed splits) a run of several seeds trains each seed's teacher,
#: student and ceiling on this share of ``train_label`` and ``train_unlabel`` (by entity, drawn with the
#: seed); the test set stays fixed. Without it every seed would repeat the same run.
FIXED_SPLIT_SUBSAMPLE = 0.8


def seed_variation(task: Task, n_seeds: int) -> str:
    """What a seed changes in a run of ``n_seeds`` seeds on ``task`` (printed with the results)."""
    if task.fixed_splits is None:
        return (
            "the split by entity (teacher's labelled set, unlabeled set, test set), "
            "hence teacher, student and ceiling"
        )
    if n_seeds == 1:
        return "nothing (fixed splits, one seed: the files as given)"
    return (
        f"a {FIXED_SPLIT_SUBSAMPLE:.0%} subsample (by entity) of train_label and of train_unlabel per seed, "
        "hence teacher, student and ceiling; the test set is fixed (resampled once per bootstrap replicate)"
    )


def _cache_path(prep: Prepared, seed: int, subsample: float | None = None) -> Path:
    head = hashlib.sha256(json.dumps(BASE_HEAD, sort_keys=True).encode()).hexdigest()[:8]
    tag = "" if subsample is None else f"-sub{subsample:g}"
    return (
        get_settings().experiment_cache
        / f"{prep.task.name}-{prep.fingerprint}"
        / f"{prep.backend}__{prep.weak_id}__{prep.strong_id}__{head}"
        / f"seed-{seed}{tag}.npz"
    )


def seed_baseline(
    prep: Prepared, seed: int, *, use_cache: bool = True, subsample: float | None = None
) -> SeedBaseline:
    """Weak teacher and ceiling for one seed (cached on disk); ``subsample``: see :meth:`Task.split`."""
    splits = prep.task.split(seed, subsample=subsample)
    path = _cache_path(prep, seed, subsample)
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                cached = z["weak_unlabel"], z["weak_test"], z["ceiling_test"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            cached = None  # torn (an older version's shared temp name): computed again and replaced
        if cached and len(cached[0]) == len(splits.train_unlabel) and len(cached[2]) == len(splits.test):
            return SeedBaseline(splits, *cached)
    tl, tu, te = splits.train_label, splits.train_unlabel, splits.test
    weak = prep.weak_model(seed).fit(tl.inputs, tl.labels.astype(float))
    weak_unlabel = weak.predict_proba(tu.inputs)
    weak_test = weak.predict_proba(te.inputs)
    ceiling = prep.strong_model(seed).fit(tu.inputs, tu.labels.astype(float))
    ceiling_test = ceiling.predict_proba(te.inputs)
    if use_cache:
        with atomic_path(path, ".npz") as tmp:
            np.savez(tmp, weak_unlabel=weak_unlabel, weak_test=weak_test, ceiling_test=ceiling_test)
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


def has_groups(groups: list[str | None] | tuple[str | None, ...]) -> bool:
    """Does a test set carry group structure (some group with two or more items)?"""
    seen: set[str] = set()
    for g in groups:
        if g is not None:
            if g in seen:
                return True
            seen.add(g)
    return False


def structured_ceiling(ceiling: np.ndarray, groups: list[str | None]) -> np.ndarray | None:
    """The ceiling after the best structure-aware decoding the platform's blocks offer (``compose``'s
    ``consistency: exclusive``, :func:`group_exclusive`), or ``None`` when the items have no groups."""
    return group_exclusive(ceiling, groups) if has_groups(groups) else None


def item_keys(items: tuple[Item, ...]) -> tuple[str, ...]:
    """Keys that identify an item across seeds: its texts (a built-in task numbers items per split, so
    its ids are positions, not identities)."""
    return tuple("\x1f".join(it.texts) for it in items)


def seed_predictions(base: SeedBaseline, transfer: np.ndarray) -> SeedPredictions:
    """One seed's scored predictions: item ids (for the paired bootstrap) and both ceilings."""
    test = base.splits.test
    return SeedPredictions(
        test.labels,
        base.weak_test,
        base.ceiling_test,
        transfer,
        ids=item_keys(test.items),
        ceiling_structured=structured_ceiling(base.ceiling_test, [it.group for it in test.items]),
    )


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
    seed_varies: str = ""

    def to_json(self) -> dict[str, Any]:
        acc, au = self.accuracy, self.auroc
        st = acc.ceiling_structured
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
            "ceiling_structured_acc": st.mean if st else None,
            "ceiling_structured_acc_ci": [st.low, st.high] if st else None,
            "pgr_structured": acc.pgr_structured.mean if acc.pgr_structured else None,
            "pgr_structured_ci": [acc.pgr_structured.low, acc.pgr_structured.high]
            if acc.pgr_structured
            else None,
            "pgr_rank": acc.pgr_rank.mean if acc.pgr_rank else None,
            "seed_varies": self.seed_varies,
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
    if len(set(seed_list)) != len(seed_list):
        raise AarlabError(f"seeds must be distinct; got {seed_list} (a repeated seed repeats the same run)")
    subsample = FIXED_SPLIT_SUBSAMPLE if task_obj.fixed_splits is not None and len(seed_list) > 1 else None
    per_seed, preds = [], []
    for seed in seed_list:
        base = seed_baseline(prep, seed, use_cache=use_cache, subsample=subsample)
        ts = time.perf_counter()
        transfer, notes = run_method(prep, base, spec, config, seed)
        labels = base.splits.test.labels
        sp = seed_predictions(base, transfer)
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
        seed_varies=seed_variation(task_obj, len(seed_list)),
    )
