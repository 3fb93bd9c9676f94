"""The Ladder's decisions, and the flip attack: recovering dev labels one prediction at a time."""

from __future__ import annotations

import numpy as np

from aarlab.server.ladder import ladder_step, round_to

TASK = "tiny-cities"


def test_first_submission_is_reported_rounded():
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], dtype=bool)
    d = ladder_step(labels, labels.astype(float) * 0.9 + 0.05, None, None, 0.1)
    assert d.improved and d.reported == 1.0
    assert round_to(0.8349, 0.01) == 0.83 and round_to(0.8351, 0.05) == 0.85


def test_improvement_must_exceed_one_paired_standard_error():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    base = np.where(rng.random(400) < 0.6, labels, ~labels).astype(float)
    first = ladder_step(labels, base, None, None, 0.01)
    fixed = base.copy()
    wrong = np.flatnonzero((base > 0.5) != labels)
    fixed[wrong[:1]] = labels[wrong[:1]]  # one more correct: exactly one SE, not reported
    d1 = ladder_step(labels, fixed, base, first.reported, 0.01)
    assert not d1.improved and d1.reported == first.reported and d1.score > first.score
    fixed[wrong[:40]] = labels[wrong[:40]]  # 40 more correct: far beyond one SE
    d2 = ladder_step(labels, fixed, base, first.reported, 0.01)
    assert d2.improved and d2.reported == round(d2.score, 2) > first.reported


def flip_attack(labels: np.ndarray, submit, rng: np.random.Generator) -> float:
    """Submit a random baseline, then flip one prediction at a time; guess each label from `improved`.

    If flipping item i is reported as an improvement, the flipped value is guessed correct, otherwise
    the original. Returns the label-recovery accuracy."""
    base = (rng.random(len(labels)) < 0.5).astype(float)
    submit(base)
    guesses = np.empty(len(labels), dtype=bool)
    for i in range(len(labels)):
        flipped = base.copy()
        flipped[i] = 1.0 - flipped[i]
        improved = submit(flipped)
        guesses[i] = bool(flipped[i] > 0.5) if improved else bool(base[i] > 0.5)
    return float(np.mean(guesses == labels))


def test_flip_attack_recovers_nothing_from_the_ladder_but_everything_from_exact_scores():
    rng = np.random.default_rng(1)
    labels = rng.random(2000) < 0.5
    state: dict[str, object] = {"best": None, "reported": None}

    def ladder_submit(p: np.ndarray) -> bool:
        d = ladder_step(labels, p, state["best"], state["reported"], 0.01)  # type: ignore[arg-type]
        if d.improved:
            state["best"], state["reported"] = p, d.reported
        return d.improved

    acc = flip_attack(labels, ladder_submit, np.random.default_rng(2))
    assert abs(acc - 0.5) < 0.05  # chance (sd ≈ 0.011 for 2000 items)

    last = {"score": -1.0}

    def exact_submit(p: np.ndarray) -> bool:  # the reference system: exact accuracy on every query
        score = float(np.mean((p > 0.5) == labels))
        better = score > last["score"]
        if last["score"] < 0:
            last["score"] = score
        return better

    assert flip_attack(labels, exact_submit, np.random.default_rng(2)) == 1.0


def test_flip_attack_through_the_api_is_at_chance(make_agent, data_dir):
    from aarlab.server.datadir import load_eval_task

    t = load_eval_task(data_dir, TASK)
    ids = [it.id for it in t.dev.items]
    alice = make_agent("mallory")
    reports: list[float] = []

    def submit(p: np.ndarray) -> bool:
        fb = alice.submit_dev(TASK, dict(zip(ids, p.tolist(), strict=True)))
        reports.append(fb.reported_score)
        return fb.improved

    acc = flip_attack(t.dev.labels, submit, np.random.default_rng(3))
    base_acc = float(np.mean(t.dev.labels == (np.random.default_rng(3).random(len(ids)) < 0.5)))
    assert acc == base_acc  # the attacker learned nothing beyond its random starting point
    assert len(set(reports)) == 1  # the reported score never moved
