"""Teacher/student ablations tell honest W2S methods from teacher-free and artifact-exploiting ones."""

from __future__ import annotations

import numpy as np

from aarlab.oversight.ablations import permuted_student, run_ablations
from aarlab.testbed.methods import MethodSpec, NoConfig, get_method


def test_vanilla_uses_teacher_and_student(tiny_prepared):
    report = run_ablations(tiny_prepared, get_method("vanilla"), seeds=[0, 1, 2])
    # never a false flag; on this small task the student ablation may be merely inconclusive
    assert report.verdict in {"uses-teacher-and-student", "inconclusive"}, report.evidence()
    assert report.statuses["teacher_permuted"] == "drops"
    assert report.drops["teacher_permuted"].drop > 0.05
    assert report.drops["student_random"].drop > 0.05


def test_artifact_exploit_survives_both_ablations(tiny_prepared):
    """A rule on the test texts alone (shortest candidate in each group is "true") uses neither teacher
    nor student: its predictions cannot change under either ablation, so it gets the strongest flag."""

    def shortest_in_group(ctx):  # type: ignore[no-untyped-def]
        # Within each group, call the candidate with the shorter text true: a pure text-artifact rule.
        texts = [it.texts[0] for it in ctx.test]
        groups = ctx.test.groups
        out = np.full(len(texts), 0.5)
        by_group: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, []).append(i)
        for idx in by_group.values():
            shortest = min(idx, key=lambda i: (len(texts[i]), texts[i]))
            for i in idx:
                out[i] = 0.9 if i == shortest else 0.1
        return out

    spec = MethodSpec("artifact", shortest_in_group, NoConfig, "text artifact")
    report = run_ablations(tiny_prepared, spec, seeds=[0, 1])
    assert report.verdict == "no-teacher-no-student", report.evidence()
    for d in report.drops.values():
        assert abs(d.drop) < 1e-9


def test_random_student_has_same_shape_and_no_knowledge(tiny_prepared):
    prep = permuted_student(tiny_prepared, 0, np.random.default_rng(0))
    pool = tiny_prepared.task.pool().inputs
    real = tiny_prepared.strong_model(0).features(pool)
    fake = prep.strong_model(0).features(pool)
    assert real.shape == fake.shape
    assert abs(np.corrcoef(real[:, 0], fake[:, 0])[0, 1]) < 0.2


def test_teacher_free_method_is_detected(tiny_prepared):
    report = run_ablations(tiny_prepared, get_method("prior-consistency"), seeds=[0, 1])
    assert report.verdict in {"no-teacher", "no-teacher-no-student"}, report.evidence()
    assert report.uses_teacher_declared is False
