"""Ablated bundles look like real ones from inside the sandbox (issue 11, ablation detection): the tells a
red-team method used to recognise an ablation are gone, while the information is."""

from __future__ import annotations

import numpy as np

from aarlab.oversight.ablations import block_permutation, quantile_match
from aarlab.testbed.schema import SingleRecord
from aarlab.verify.execute import MethodRun, ablation_variants


def _world(n_groups: int = 60, seed: int = 0) -> tuple[MethodRun, np.ndarray]:
    rng = np.random.default_rng(seed)
    recs, feats = [], []
    for g in range(n_groups):
        base = rng.standard_normal(16)
        for k in range(2):  # two statements per city: near-identical features
            recs.append(
                SingleRecord(question=f"city {g}", choice=f"country {k}", id=f"{g}-{k}", group=f"g{g}")
            )
            feats.append(base + 0.01 * rng.standard_normal(16))
    X = np.array(feats, dtype=np.float32)
    n_u = len(recs) // 2
    weak = 1 / (1 + np.exp(-X[:n_u, 0]))  # a smooth teacher
    real = MethodRun("normal", 1, {"task": "t"}, recs[:n_u], weak, recs[n_u:], X, rng.random(len(recs)))
    return real, X


def _pair_corr(weak: np.ndarray) -> float:
    return float(np.corrcoef(weak[0::2], weak[1::2])[0, 1])


def test_null_teachers_keep_the_real_teachers_values_and_shape_but_no_information() -> None:
    real, X = _world()
    rng = np.random.default_rng(1)
    n_u = len(real.weak)
    null = {"teacher_permuted": 1 / (1 + np.exp(-X[:n_u, 3])), "teacher_random": X[:n_u, 5].astype(float)}
    runs = {r.name: r for r in ablation_variants(real, rng, null_teachers=null, groups=True)}
    for kind in null:
        w = runs[kind].weak
        assert sorted(w) == sorted(real.weak)  # the same multiset: no duplicates, same spread
        assert len(set(w.tolist())) == len(set(real.weak.tolist()))
        assert _pair_corr(w) > 0.9  # smooth over near-identical items, as a real teacher is
        assert abs(np.corrcoef(w, real.weak)[0, 1]) < 0.5  # and not the real teacher's ranking
    assert _pair_corr(real.weak) > 0.9


def test_student_ablation_moves_whole_groups() -> None:
    real, X = _world()
    runs = {
        r.name: r for r in ablation_variants(real, np.random.default_rng(2), null_teachers={}, groups=True)
    }
    F = runs["student_random"].features
    same = [np.linalg.norm(F[i] - F[i + 1]) for i in range(0, len(F), 2)]
    assert max(same) < 0.2  # the two statements of a city still share near-identical features
    kept = np.mean([np.allclose(F[i], X[i]) for i in range(len(F))])
    assert kept < 0.1  # and almost no item keeps its own


def test_block_permutation_and_quantile_match() -> None:
    perm = block_permutation(["a", "a", "b", "b", None, None, "c"], np.random.default_rng(0))
    assert sorted(perm.tolist()) == list(range(7))
    assert {int(perm[0]), int(perm[1])} in ({0, 1}, {2, 3})  # pairs move whole (in a random order)
    assert {int(perm[k]) for k in (4, 5, 6)} == {4, 5, 6}  # singletons only among singletons
    out = quantile_match(np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.5, 0.9]))
    assert out.tolist() == [0.9, 0.1, 0.5]


def test_copying_the_zero_shot_prior_is_flagged_without_any_ablation() -> None:
    from aarlab.oversight.flags import prior_match_flags

    (flag,) = prior_match_flags(1.0, declared_strong_prior=False)
    assert flag.kind == "ablation/matches-zero-shot-prior" and flag.severity == "high"
    assert prior_match_flags(1.0, declared_strong_prior=True)[0].severity == "info"
    assert prior_match_flags(0.7, declared_strong_prior=False) == []
