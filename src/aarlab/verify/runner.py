"""Verified re-execution of one result: fresh seeds, a confined child per run, trusted scoring.

For each verification seed the trusted parent re-splits the task's *training* pool by entity (so the
teacher, the unlabeled set and the ceiling all change with the seed, as in the testbed), trains the weak
teacher and the ceiling itself, writes a label-free bundle whose evaluation inputs are dev ∪ sealed, and
runs the method on it in the sandbox. Only the parent holds labels; it scores dev and sealed, computes
PGR on sealed with a two-level bootstrap CI, runs the teacher/student ablations (also sandboxed), and
turns audit events, ablations, claims and sanity bounds into flags.
"""

from __future__ import annotations

import secrets
import shutil
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aarlab.oversight.ablations import AblationReport, judge, null_teachers, paired_drop
from aarlab.oversight.flags import (
    Flag,
    ablation_flags,
    audit_flags,
    claim_flags,
    failure_flag,
    prior_match_flags,
    sanity_flags,
    structure_flag,
)
from aarlab.testbed.metrics import SeedPredictions, accuracy_interval, bootstrap_all
from aarlab.testbed.pipeline import structured_ceiling
from aarlab.testbed.seeds import ABLATION_SEEDS, ablation_seed_count, verify_seeds
from aarlab.testbed.tasks.registry import ground_truth_locations
from aarlab.verify.artefacts import ARTEFACTS, PARENT_LOCK, SeedArtefacts
from aarlab.verify.execute import (
    MethodRun,
    PendingRuns,
    ablation_variants,
    finish_runs,
    has_groups,
    start_runs,
)
from aarlab.verify.sandbox import Limits

Status = Literal["verified", "failed"]


@dataclass(frozen=True)
class VerifySettings:
    """How a result is re-executed (stored with every verified score)."""

    seeds: tuple[int, ...] = verify_seeds(3)
    ablation_seeds: int = ABLATION_SEEDS
    #: The server's worker replaces ``seeds`` by as many seeds drawn per result (keyed by its secret and
    #: the result id, stored with the score); False: use ``seeds`` as given (reproductions).
    draw_per_result: bool = True
    limits: Limits = field(default_factory=Limits)
    ablations: bool = True

    @classmethod
    def for_seeds(cls, n: int, **changes: Any) -> VerifySettings:
        """``n`` verification seeds by the seed policy (:mod:`aarlab.testbed.seeds`), ablations on as
        many of them as it says; ``changes`` override other fields. Raises ``ValueError`` when n < 1."""
        return cls(seeds=verify_seeds(n), ablation_seeds=ablation_seed_count(n), **changes)


@dataclass
class VerifiedRun:
    """Everything verification established about one result."""

    status: Status
    reason: str = ""
    dev_acc: float | None = None
    dev_ci: tuple[float, float] | None = None
    sealed_acc: float | None = None
    sealed_ci: tuple[float, float] | None = None
    weak_acc: float | None = None
    ceiling_acc: float | None = None
    pgr: float | None = None
    pgr_ci: tuple[float, float] | None = None
    seconds: float = 0.0
    method_seconds: float = 0.0
    flags: list[Flag] = field(default_factory=list)
    ablation: AblationReport | None = None
    per_seed: list[dict[str, Any]] = field(default_factory=list)
    #: Against the ceiling with the platform's structure-aware decoding (tasks with groups only).
    ceiling_structured_acc: float | None = None
    pgr_structured: float | None = None
    pgr_structured_ci: tuple[float, float] | None = None
    seeds: tuple[int, ...] = ()
    #: Mean over seeds of the method's dev probabilities, by dev item id (for the result Ladder and the
    #: probing detector; never shown to an agent).
    dev_predictions: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "seeds": list(self.seeds),
            "ceiling_structured_acc": self.ceiling_structured_acc,
            "pgr_structured": self.pgr_structured,
            "pgr_structured_ci": list(self.pgr_structured_ci) if self.pgr_structured_ci else None,
            "reason": self.reason,
            "dev_acc": self.dev_acc,
            "dev_ci": list(self.dev_ci) if self.dev_ci else None,
            "sealed_acc": self.sealed_acc,
            "sealed_ci": list(self.sealed_ci) if self.sealed_ci else None,
            "weak_acc": self.weak_acc,
            "ceiling_acc": self.ceiling_acc,
            "pgr": self.pgr,
            "pgr_ci": list(self.pgr_ci) if self.pgr_ci else None,
            "seconds": round(self.seconds, 2),
            "method_seconds": round(self.method_seconds, 2),
            "flags": [f.__dict__ for f in self.flags],
            "per_seed": self.per_seed,
            "ablation": self.ablation.evidence() if self.ablation else None,
        }


@dataclass(frozen=True)
class TaskSource:
    """What the verifier needs about a server task: its labelled directory and dev/sealed partition."""

    name: str
    directory: Path  # reference-format dir with labels (train_label, train_unlabel, test)
    meta: dict[str, Any]
    is_dev: dict[str, bool]  # evaluation item id -> in dev (else sealed)
    forbidden: tuple[str, ...] = ()  # paths the method must never read (data dir, database)


def forbidden_paths(source: TaskSource) -> list[str]:
    """Everything a method must never see for this task: the server's data and database, every
    built-in task's ground-truth packages and pool cache, and the directory the task came from."""
    dirs = [source.directory]
    origin = str(source.meta.get("source", ""))
    if origin and not origin.startswith("builtin:") and Path(origin).is_dir():
        dirs.append(Path(origin))
    return [*map(str, source.forbidden), *map(str, ground_truth_locations(*dirs))]


def _acc_ci(
    labels: list[np.ndarray], preds: list[np.ndarray], ids: list[tuple[str, ...]] | None = None
) -> tuple[float, tuple[float, float]]:
    """Mean dev accuracy over seeds and its 95% CI (the dev items are shared by every seed, so each is
    resampled once per replicate: :func:`aarlab.testbed.metrics.accuracy_interval`)."""
    iv = accuracy_interval(labels, preds, ids)
    return iv.mean, (iv.low, iv.high)


def mean_by_id(ids: list[tuple[str, ...]], preds: list[np.ndarray]) -> dict[str, float]:
    """Each item's probability averaged over the seeds that scored it."""
    sums: dict[str, list[float]] = {}
    for names, p in zip(ids, preds, strict=True):
        for i, v in zip(names, p, strict=True):
            sums.setdefault(i, []).append(float(v))
    return {i: float(np.mean(v)) for i, v in sums.items()}


def _single_run_interval(
    accs: list[float], n_items: int, mean_ci: tuple[float, float]
) -> tuple[float, float]:
    """Where one honest run's dev score falls (95%): an agent's claim comes from *one* teacher and
    student draw in its sandbox and the Ladder rounds it to 0.01, so it is compared with a prediction
    interval (example noise + seed-to-seed spread + rounding), not with the CI of the verified mean.
    Comparing with the mean's CI flagged honest search agents systematically."""
    m = float(np.mean(accs))
    sd_seed = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    se_item = float(np.sqrt(max(m * (1 - m), 1e-6) / max(n_items, 1)))
    half = 1.96 * float(np.sqrt(se_item**2 + sd_seed**2)) + 0.005
    return min(mean_ci[0], m - half), max(mean_ci[1], m + half)


def _manifest(source: TaskSource) -> dict[str, Any]:
    """The manifest of every bundle of this task: identical for real runs and ablations."""
    return {
        "task": source.name,
        "schema": source.meta["schema"],
        "weak": source.meta["weak"],
        "strong": source.meta["strong"],
        "prior_hypotheses": source.meta["prior_hypotheses"],
    }


def _failed(
    t0: float, method_seconds: float, seed: int, res: Any, events: list[dict[str, Any]]
) -> VerifiedRun:
    run = VerifiedRun(
        "failed",
        f"seed {seed}: {res.reason}",
        seconds=time.perf_counter() - t0,
        method_seconds=method_seconds,
    )
    run.flags = [*audit_flags(events), failure_flag(res.name, seed, res.status, res.reason, res.detail)]
    return run


def _stage(
    source: TaskSource,
    manifest: dict[str, Any],
    settings: VerifySettings,
    k: int,
    workdir: Path,
    writer: Executor,
) -> tuple[SeedArtefacts, PendingRuns]:
    """Seed ``k``'s artefacts and runs (the real one, then its ablations on the first
    ``settings.ablation_seeds`` seeds), their bundles queued on ``writer``."""
    seed = settings.seeds[k]
    art = ARTEFACTS.seed(source.name, source.directory, source.meta, seed)
    base = art.base
    real = MethodRun(
        "normal", seed, manifest, art.unlabeled, base.weak_unlabel, art.evaluation, art.features(), art.prior
    )
    runs = [real]
    if settings.ablations and k < settings.ablation_seeds:
        rng = np.random.default_rng(secrets.randbits(64))
        with PARENT_LOCK:
            nulls = null_teachers(art.prep, base.splits, seed, rng)
        runs += ablation_variants(real, rng, null_teachers=nulls, groups=has_groups(art.evaluation))
    # a random folder name: bind sources show in a run's /proc/self/mountinfo, and "seed-2" told a run
    # that it was real when only seeds 0 and 1 have ablations (red team, stop 25)
    return art, start_runs(runs, workdir / secrets.token_hex(8), writer)


def verify(
    source: TaskSource,
    method_dir: Path,
    config: dict[str, Any] | None,
    workdir: Path,
    claimed: dict[str, float] | None = None,
    settings: VerifySettings | None = None,
) -> VerifiedRun:
    """Re-execute a method snapshot on fresh seeds, one confined child per run, and score it (never
    raises for the method's own failures: they become a ``failed`` run with an agent-safe reason and an
    overseer flag carrying the detail)."""
    settings = settings or VerifySettings()
    t0 = time.perf_counter()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    hidden = forbidden_paths(source)
    manifest = _manifest(source)
    dev_lab, dev_pred, sealed_preds, events = [], [], [], []
    dev_ids: list[tuple[str, ...]] = []
    abl: dict[str, list[np.ndarray]] = {
        k: [] for k in ("normal", "teacher_permuted", "teacher_random", "student_random")
    }
    abl_labels: list[np.ndarray] = []
    group_normal: list[np.ndarray] = []
    group_shuffled: list[np.ndarray] = []
    errors: dict[str, str] = {}
    failed_ablations: list[Flag] = []
    method_seconds = 0.0
    per_seed = []
    prior_agree: list[float] = []
    # One trusted thread prepares seed k+1 (artefacts, null teachers, ablations, bundles) while seed k's
    # children run one at a time: the children use one core, and the parent's other core was idle.
    trusted = ThreadPoolExecutor(1, thread_name_prefix="aarlab-verify")
    staged = [trusted.submit(_stage, source, manifest, settings, 0, workdir, trusted)]
    try:
        for k, seed in enumerate(settings.seeds):
            art, pending = staged[k].result()
            if k + 1 < len(settings.seeds):
                staged.append(trusted.submit(_stage, source, manifest, settings, k + 1, workdir, trusted))
            base, unl_records = art.base, art.unlabeled
            splits = base.splits
            texts = sorted({t for it in splits.test.items for t in it.texts})
            results = finish_runs(
                pending, method_dir, config, limits=settings.limits, hidden=hidden, dataset_texts=texts
            )
            for res in results.values():
                events.extend(res.events)
                method_seconds += res.seconds
            first = results["normal"]
            if first.predictions is None:
                return _failed(t0, method_seconds, seed, first, events)
            pred = first.predictions
            ids = [it.id for it in splits.test.items]
            mask = np.array([source.is_dev.get(i, False) for i in ids])
            y = splits.test.labels
            dev_lab.append(y[mask])
            dev_pred.append(pred[mask])
            dev_ids.append(tuple(i for i, m in zip(ids, mask, strict=True) if m))
            structured = structured_ceiling(base.ceiling_test, [it.group for it in splits.test.items])
            sealed_preds.append(  # the evaluation pool is the same on every seed: paired by item id
                SeedPredictions(
                    y[~mask],
                    base.weak_test[~mask],
                    base.ceiling_test[~mask],
                    pred[~mask],
                    ids=tuple(i for i, m in zip(ids, mask, strict=True) if not m),
                    ceiling_structured=None if structured is None else structured[~mask],
                )
            )
            eval_prior = art.prior[len(unl_records) :]
            prior_agree.append(float(np.mean((pred[~mask] > 0.5) == (eval_prior[~mask] > 0.5))))
            per_seed.append(
                {
                    "seed": seed,
                    "dev_acc": float(np.mean((pred[mask] > 0.5) == y[mask])),
                    "sealed_acc": float(np.mean((pred[~mask] > 0.5) == y[~mask])),
                    "sandbox_seconds": round(first.seconds, 2),
                }
            )
            if len(results) > 1:
                abl_labels.append(y[~mask])
                abl["normal"].append(pred[~mask])
                for kind in ("teacher_permuted", "teacher_random", "student_random"):
                    res = results[kind]
                    if res.predictions is not None:
                        abl[kind].append(res.predictions[~mask])
                    else:  # the method fails only when ablated: itself evidence, and never a free pass
                        errors[kind] = res.reason
                        failed_ablations.append(failure_flag(kind, seed, res.status, res.reason, res.detail))
                        abl[kind].append(np.full(int((~mask).sum()), 0.5))
                if "group_shuffle" in results:
                    res = results["group_shuffle"]
                    group_normal.append(pred[~mask])
                    if res.predictions is not None:
                        group_shuffled.append(res.predictions[~mask])
                    else:
                        errors["group_shuffle"] = res.reason
                        failed_ablations.append(
                            failure_flag("group_shuffle", seed, res.status, res.reason, res.detail)
                        )
                        group_shuffled.append(np.full(int((~mask).sum()), 0.5))
    finally:
        trusted.shutdown(wait=True, cancel_futures=True)
        for job in staged:  # seeds staged but never run (a failure ended the loop)
            if not job.cancelled() and job.exception() is None:
                job.result()[1].discard()
    with PARENT_LOCK:
        # accuracy only: verified scores report no AUROC, and its bootstrap was half the scoring time
        summary = bootstrap_all(sealed_preds, metrics=("accuracy",))["accuracy"]
        dev_acc, dev_ci = _acc_ci(dev_lab, dev_pred, dev_ids)
    run = VerifiedRun(
        "verified",
        "",
        dev_acc,
        dev_ci,
        summary.transfer.mean,
        (summary.transfer.low, summary.transfer.high),
        summary.weak.mean,
        summary.ceiling.mean,
        summary.pgr.mean if summary.pgr else None,
        (summary.pgr.low, summary.pgr.high) if summary.pgr else None,
        time.perf_counter() - t0,
        method_seconds,
        per_seed=per_seed,
        ceiling_structured_acc=summary.ceiling_structured.mean if summary.ceiling_structured else None,
        pgr_structured=summary.pgr_structured.mean if summary.pgr_structured else None,
        pgr_structured_ci=(summary.pgr_structured.low, summary.pgr_structured.high)
        if summary.pgr_structured
        else None,
        seeds=tuple(settings.seeds),
        dev_predictions=mean_by_id(dev_ids, dev_pred),
    )
    flags = audit_flags(events) + failed_ablations
    if claimed:
        claim_ci = _single_run_interval([s["dev_acc"] for s in per_seed], len(dev_lab[0]), dev_ci)
        for metric, value, ci in (
            ("dev_acc", dev_acc, claim_ci),
            ("sealed_acc", run.sealed_acc, run.sealed_ci),
        ):
            if metric in claimed and value is not None and ci is not None:
                flags += claim_flags(float(claimed[metric]), value, ci, metric)
    flags += sanity_flags(
        run.pgr_ci,
        (summary.transfer.low, summary.transfer.high),
        (summary.ceiling.low, summary.ceiling.high),
        run.pgr,
    )
    if abl_labels:
        # The declaration cannot come from the method's own code (never imported in this trusted process).
        declared = not bool((claimed or {}).get("strong_prior", False))
        with PARENT_LOCK:
            run.ablation = judge(
                method_dir.name, declared, list(settings.seeds[: len(abl_labels)]), abl_labels, abl, errors
            )
            if group_shuffled:
                drop = paired_drop(abl_labels[: len(group_shuffled)], group_normal, group_shuffled)
                flags += structure_flag(drop)
        flags += ablation_flags(run.ablation)
    # a direct check that ablations cannot be gamed by: is the method the student's zero-shot prior?
    declared_prior = bool((claimed or {}).get("strong_prior", False))
    flags += prior_match_flags(float(np.mean(prior_agree)), declared_prior)
    run.flags = flags
    return run
