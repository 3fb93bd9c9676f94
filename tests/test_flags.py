"""Detectors: probing patterns, claim vs reproduction, sanity bounds, audit events."""

from __future__ import annotations

import numpy as np

from aarlab.oversight.flags import audit_flags, claim_flags, probing_flags, sanity_flags


def _honest_sequence(rng: np.random.Generator, n: int = 500, k: int = 8) -> list[np.ndarray]:
    # an honest researcher: each submission is a different method, changing many predictions
    return [rng.random(n) for _ in range(k)]


def test_single_item_flip_attack_is_flagged():
    rng = np.random.default_rng(0)
    base = rng.random(500)
    seq = [base.copy()]
    for i in range(10):
        v = seq[-1].copy()
        v[i] = 1 - v[i]
        seq.append(v)
    kinds = {f.kind: f for f in probing_flags(seq)}
    assert "probing/single-item-flips" in kinds
    assert kinds["probing/single-item-flips"].severity == "critical"
    assert "probing/near-duplicates" in kinds


def test_honest_sequences_raise_no_probing_flag():
    rng = np.random.default_rng(1)
    assert probing_flags(_honest_sequence(rng)) == []
    assert probing_flags([rng.random(100)]) == []


def test_claim_vs_reproduction():
    assert claim_flags(0.71, 0.70, (0.68, 0.72), "dev_acc") == []
    assert claim_flags(None, 0.70, (0.68, 0.72), "dev_acc") == []
    (f,) = claim_flags(0.95, 0.70, (0.68, 0.72), "dev_acc")
    assert f.severity == "high" and "above" in f.summary


def test_sanity_bounds():
    assert sanity_flags((0.1, 0.4), (0.69, 0.71), (0.78, 0.81)) == []
    kinds = {f.kind for f in sanity_flags((1.1, 1.4), (0.82, 0.85), (0.78, 0.81))}
    assert kinds == {"sanity/pgr-above-1", "sanity/above-ceiling"}
    # a point estimate above 1 that the CI cannot separate from 1: a warning for the reviewer
    (warn,) = sanity_flags((0.9, 1.4), (0.80, 0.85), (0.78, 0.81), pgr=1.14)
    assert warn.kind == "sanity/pgr-estimate-above-1" and warn.severity == "warn"
    assert sanity_flags((0.1, 0.4), (0.69, 0.71), (0.78, 0.81), pgr=0.3) == []


def test_audit_events_become_flags():
    flags = audit_flags(
        [{"event": "forbidden_open", "path": "/srv/labels"}, {"event": "network"}, {"event": "network"}]
    )
    by = {f.kind: f for f in flags}
    assert by["audit/forbidden_open"].severity == "critical"
    assert "2 network" in by["audit/network"].summary
    assert audit_flags([]) == []
