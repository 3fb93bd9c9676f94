"""Teacher and student ablations: does a method's score come from the teacher and the student at all?

W2S is defined by learning from a weak teacher with a strong student. So we re-run a method with

* the teacher's labels **permuted** across items (same label distribution, no information), and with
  labels **drawn at random from the teacher's own** (same distribution, no information);
* the strong student's features replaced by features carrying no knowledge of the item (in verified
  runs: the real rows permuted across items; in the testbed: random features of the same shape).

A method whose score does not drop under the teacher ablations is not learning from the teacher
("no-teacher": legitimate for strong-prior methods, but it must be labelled as such). A method whose
score survives *both* ablations uses neither teacher nor student: a dataset-artifact exploit such as
"always pick the most common answer", and gets the strongest flag. Drops are judged with a paired
bootstrap over seeds and test examples, so seed noise alone never raises or clears a flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from aarlab.testbed.methods import MethodSpec
from aarlab.testbed.metrics import resample_counts
from aarlab.testbed.models import EmbedModel, FeatureTable, StudentModel
from aarlab.testbed.pipeline import Prepared, SeedBaseline, run_method, seed_baseline

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


def random_student(prep: Prepared, seed: int) -> Prepared:
    """The same task with the strong student's features replaced by Gaussian noise of the same shape.

    Features are a fixed random matrix (seeded), so the ablated student is as trainable as the real one
    but knows nothing; its zero-shot prior is random too.
    """
    pool = prep.task.pool()
    shape = prep.strong_model(seed).features(pool.inputs).shape
    rng = np.random.default_rng(10_000 + seed)
    table = FeatureTable("random", pool.items, rng.standard_normal(shape).astype(np.float32))
    prior = {it.texts: float(v) for it, v in zip(pool.items, rng.random(len(pool.items)), strict=True)}

    def factory(s: int) -> StudentModel:
        return EmbedModel(table, prior, s)

    return replace(prep, strong_model=factory, strong_id="random")


def _ablated_teacher(base: SeedBaseline, kind: str, seed: int) -> SeedBaseline:
    rng = np.random.default_rng(20_000 + seed)
    if kind == "teacher_permuted":
        return replace(base, weak_unlabel=rng.permutation(base.weak_unlabel))
    # drawn from the teacher's own labels: no information, and the same distribution as a real teacher
    return replace(base, weak_unlabel=rng.choice(base.weak_unlabel, size=len(base.weak_unlabel)))


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
        runs = {
            "teacher_permuted": (prep, _ablated_teacher(base, "teacher_permuted", seed)),
            "teacher_random": (prep, _ablated_teacher(base, "teacher_random", seed)),
            "student_random": (random_student(prep, seed), base),
        }
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
