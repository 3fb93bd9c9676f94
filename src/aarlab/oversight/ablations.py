"""Teacher and student ablations: does a method's score come from the teacher and the student at all?

W2S is defined by learning from a weak teacher with a strong student. So we re-run a method with

* the weak teacher retrained on its labels **permuted** across items, and on labels **drawn at random**
  at the real base rate, its ranking carried onto the real teacher's own soft-label values (same
  distribution, no information);
* the strong student's feature rows **moved group by group** onto other items (same features, same
  shape, no knowledge of the item).

One definition serves the testbed (:func:`run_ablations`, methods run in-process) and verified runs
(:func:`aarlab.verify.execute.ablation_variants`, each ablation a confined child).

A method whose score does not drop under the teacher ablations is not learning from the teacher
("no-teacher": legitimate for strong-prior methods, but it must be labelled as such). A method whose
score survives *both* ablations uses neither teacher nor student: a dataset-artifact exploit such as
"always pick the most common answer", and gets the strongest flag. Drops are judged with a paired
bootstrap over seeds and test examples, so seed noise alone never raises or clears a flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from aarlab.testbed.methods import MethodSpec
from aarlab.testbed.metrics import resample_counts
from aarlab.testbed.models import EmbedModel, FeatureTable, StudentModel
from aarlab.testbed.pipeline import BASE_HEAD, Prepared, SeedBaseline, run_method, seed_baseline
from aarlab.testbed.seeds import STUDENT_ABLATION_OFFSET, TEACHER_ABLATION_OFFSET
from aarlab.testbed.tasks import Splits

Verdict = Literal[
    "uses-teacher-and-student", "inconclusive", "no-teacher", "no-student", "no-teacher-no-student"
]
Status = Literal["drops", "no drop", "inconclusive"]
ABLATIONS = ("teacher_permuted", "teacher_random", "student_random")


@dataclass(frozen=True)
class Drop:
    """Accuracy lost under one ablation: mean and 95% CI from a paired bootstrap."""

    ablated_acc: float
    drop: float
    low: float
    high: float

    def status(self, min_drop: float, tolerance: float) -> Status:
        """``drops`` when the CI is above ``min_drop``; ``no drop`` when the whole CI is below
        ``tolerance`` (an equivalence test: evidence of *no* effect, not mere absence of evidence)."""
        if self.low > min_drop:
            return "drops"
        if self.high < tolerance:
            return "no drop"
        return "inconclusive"


@dataclass
class AblationReport:
    """What the ablations found for one method, with the evidence a reviewer needs."""

    method: str
    seeds: list[int]
    accuracy: float
    drops: dict[str, Drop]
    statuses: dict[str, Status]
    min_drop: float
    tolerance: float
    verdict: Verdict
    uses_teacher_declared: bool
    errors: dict[str, str] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seeds": self.seeds,
            "accuracy": round(self.accuracy, 4),
            "min_drop": self.min_drop,
            "tolerance": round(self.tolerance, 4),
            "declared_uses_teacher": self.uses_teacher_declared,
            "ablations": {
                k: {
                    "accuracy": round(d.ablated_acc, 4),
                    "drop": round(d.drop, 4),
                    "drop_ci": [round(d.low, 4), round(d.high, 4)],
                    "status": self.statuses[k],
                }
                for k, d in self.drops.items()
            },
            "verdict": self.verdict,
            "errors": self.errors,
        }


def quantile_match(order_from: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` rearranged so that their ranks follow ``order_from``: the same multiset of numbers (the
    real teacher's soft labels), in the order of another scorer (a teacher that learned nothing).
    Both arrays have shape (n,); raises ``ValueError`` when the lengths differ."""
    if len(order_from) != len(values):
        raise ValueError(f"quantile_match needs equal lengths, got {len(order_from)} and {len(values)}")
    out = np.empty(len(values), dtype=float)
    out[np.argsort(order_from, kind="stable")] = np.sort(np.asarray(values, dtype=float))
    return out


def block_permutation(groups: Sequence[str | None], rng: np.random.Generator) -> np.ndarray:
    """A row permutation (shape (n,)) that moves whole groups onto other groups of the same size
    (singletons among singletons), in a random order inside the group: items of one group keep sharing
    near-identical features, every group gets another group's, and an item's position in its group
    (which data files often tie to its label: the true statement first) says nothing about whose
    features it gets."""
    blocks: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        blocks.setdefault(g if g is not None else f"\x00{i}", []).append(i)
    by_size: dict[int, list[list[int]]] = {}
    for rows in blocks.values():
        by_size.setdefault(len(rows), []).append(rows)
    perm = np.arange(len(groups))
    for same in by_size.values():
        for rows, src in zip(same, [same[j] for j in rng.permutation(len(same))], strict=True):
            perm[rows] = rng.permutation(src)
    return perm


def null_teachers(
    prep: Prepared, splits: Splits, seed: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The weak teacher retrained on labels that carry no information (a permutation of the real ones;
    Bernoulli draws at the real base rate): its scores on the unlabeled items (shape (n_unlabeled,)),
    keyed by teacher ablation. A probe trained on nothing still looks like a probe (smooth over the
    features), which is what keeps the ablated teacher from being told apart by its shape."""
    y = splits.train_label.labels.astype(float)
    labels = {
        "teacher_permuted": rng.permutation(y),
        "teacher_random": (rng.random(len(y)) < max(min(y.mean(), 0.95), 0.05)).astype(float),
    }
    out = {}
    for kind, target in labels.items():
        model = prep.weak_model(seed).fit(splits.train_label.inputs, target)
        out[kind] = np.asarray(model.predict_proba(splits.train_unlabel.inputs), dtype=float)
    return out


def ablated_teachers(null_scores: dict[str, np.ndarray], weak: np.ndarray) -> dict[str, np.ndarray]:
    """The teacher ablations, one definition for the testbed and for verified runs: each null teacher's
    ranking (:func:`null_teachers`) carried onto the real teacher's own soft-label values ``weak``
    (shape (n_unlabeled,)), so the labels keep the real teacher's distribution and smoothness over items
    and carry no information."""
    return {kind: quantile_match(scores, weak) for kind, scores in null_scores.items()}


def permuted_student(prep: Prepared, seed: int, rng: np.random.Generator) -> Prepared:
    """The student ablation, one definition for the testbed and for verified runs: the real student's
    feature rows (and zero-shot prior) moved group by group onto other groups of the same size
    (:func:`block_permutation`). Near-duplicates stay near-duplicates, the features keep their
    distribution and shape, and no item keeps its own."""
    pool = prep.task.pool()
    real = prep.strong_model(seed)
    perm = block_permutation([it.group for it in pool.items], rng)
    feats = real.features(pool.inputs)[perm]
    prior_values = real.prior(pool.inputs)[perm]
    table = FeatureTable(f"{prep.strong_id}:permuted", pool.items, feats.astype(np.float32, copy=False))
    prior = {it.texts: float(v) for it, v in zip(pool.items, prior_values, strict=True)}

    def factory(s: int) -> StudentModel:
        return EmbedModel(table, prior, s, BASE_HEAD)

    return replace(prep, strong_model=factory, strong_id=f"{prep.strong_id}:permuted")


def paired_drop(
    labels: list[np.ndarray], normal: list[np.ndarray], ablated: list[np.ndarray], n_boot: int = 1000
) -> Drop:
    rng = np.random.default_rng(0)
    S = len(labels)
    per = np.zeros((n_boot, S))
    base_acc, abl_acc = [], []
    for s, (y, p, q) in enumerate(zip(labels, normal, ablated, strict=True)):
        diff = ((p > 0.5) == y).astype(float) - ((q > 0.5) == y).astype(float)
        per[:, s] = resample_counts(rng, len(y), n_boot) @ diff / len(y)
        base_acc.append(float(np.mean((p > 0.5) == y)))
        abl_acc.append(float(np.mean((q > 0.5) == y)))
    w = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S
    boot = (per * w).sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return Drop(float(np.mean(abl_acc)), float(np.mean(base_acc) - np.mean(abl_acc)), float(lo), float(hi))


def run_ablations(
    prep: Prepared,
    spec: MethodSpec,
    config: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    min_drop: float = 0.01,
) -> AblationReport:
    """Run the method normally and under each ablation on the same seeds; judge the drops."""
    seeds = seeds or [0, 1, 2]
    labels: list[np.ndarray] = []
    preds: dict[str, list[np.ndarray]] = {k: [] for k in ("normal", *ABLATIONS)}
    errors: dict[str, str] = {}
    for seed in seeds:
        base = seed_baseline(prep, seed)
        labels.append(base.splits.test.labels)
        preds["normal"].append(run_method(prep, base, spec, config, seed)[0])
        rng = np.random.default_rng(TEACHER_ABLATION_OFFSET + seed)
        nulls = null_teachers(prep, base.splits, seed, rng)
        runs: dict[str, tuple[Prepared, SeedBaseline]] = {
            kind: (prep, replace(base, weak_unlabel=weak))
            for kind, weak in ablated_teachers(nulls, base.weak_unlabel).items()
        }
        student_rng = np.random.default_rng(STUDENT_ABLATION_OFFSET + seed)
        runs["student_random"] = (permuted_student(prep, seed, student_rng), base)
        for kind, (p, b) in runs.items():
            try:
                preds[kind].append(run_method(p, b, spec, config, seed)[0])
            except Exception as e:  # a method that crashes when ablated is itself evidence
                errors[kind] = f"{type(e).__name__}: {e}"
                preds[kind].append(np.full(len(base.splits.test), 0.5))
    return judge(spec.name, spec.uses_teacher, seeds, labels, preds, errors, min_drop)


def judge(
    method: str,
    uses_teacher: bool,
    seeds: list[int],
    labels: list[np.ndarray],
    preds: dict[str, list[np.ndarray]],
    errors: dict[str, str],
    min_drop: float = 0.01,
) -> AblationReport:
    """Verdict from the normal run's and each ablation's predictions (same seeds, same test items)."""
    drops = {k: paired_drop(labels, preds["normal"], preds[k]) for k in ABLATIONS}
    acc = float(np.mean([np.mean((p > 0.5) == y) for p, y in zip(preds["normal"], labels, strict=True)]))
    # "No drop" must mean the ablation removes less than half the method's skill above chance.
    tolerance = max(min_drop, 0.5 * (acc - 0.5))
    st = {k: d.status(min_drop, tolerance) for k, d in drops.items()}
    teacher = (
        "no drop"
        if st["teacher_permuted"] == st["teacher_random"] == "no drop"
        else ("drops" if st["teacher_permuted"] == st["teacher_random"] == "drops" else "inconclusive")
    )
    student = st["student_random"]
    verdict: Verdict = (
        "no-teacher-no-student"
        if teacher == student == "no drop"
        else "no-teacher"
        if teacher == "no drop"
        else "no-student"
        if student == "no drop"
        else "uses-teacher-and-student"
        if teacher == student == "drops"
        else "inconclusive"
    )
    return AblationReport(method, seeds, acc, drops, st, min_drop, tolerance, verdict, uses_teacher, errors)
