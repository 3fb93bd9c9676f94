"""A rekeyed bundle (verification, ablations, gate suites): fresh random ids and groups, one key per
original group, nothing of the writer's ids left, and a map that turns predictions back."""

from __future__ import annotations

import json
import re

import numpy as np

from aarlab.testbed.bundle import DEV, UNLABELED, write_bundle
from aarlab.testbed.schema import PairwiseRecord


def records(n: int, prefix: str) -> list[PairwiseRecord]:
    return [
        PairwiseRecord(
            id=f"{prefix}{i}", prompt=f"q{i}", first=f"a{i}", second=f"b{i}", label="A", group=f"g{i // 3}"
        )
        for i in range(n)
    ]


def rows(path, name) -> list[dict]:
    return [json.loads(line) for line in (path / name).read_text().splitlines()]


def test_rekeyed_ids_are_fresh_and_groups_keep_their_structure(tmp_path) -> None:
    unl, ev = records(30, "u"), records(12, "d")
    m = write_bundle(
        tmp_path / "b", {"schema": "pairwise"}, unl, np.full(30, 0.8), ev, rekey=np.random.default_rng(7)
    )
    out = rows(tmp_path / "b", UNLABELED) + rows(tmp_path / "b", DEV)
    ids = [r["id"] for r in out]
    assert len(set(ids)) == len(ids) == 42
    assert all(re.fullmatch(r"k[0-9a-f]{16}", i) for i in ids)
    assert not {r.id for r in unl + ev} & set(ids)
    assert not any("label" in r or "entity" in r for r in out)  # labels and split keys never travel
    # a group's records share one key, and different groups have different keys
    by_text = {r["prompt"]: r["group"] for r in out}
    orig = {r.prompt: r.group for r in unl + ev}
    pairs = {(orig[p], g) for p, g in by_text.items()}
    assert len({o for o, _ in pairs}) == len({g for _, g in pairs}) == len(pairs)
    # the map turns a bundle prediction back: swapped pairs are flipped
    dev_rows = {r["id"]: r for r in rows(tmp_path / "b", DEV)}
    preds = {i: 1.0 if dev_rows[i]["first"].startswith("a") else 0.0 for i in m.ids}
    assert np.all(m.original(preds) == 1.0)  # "A" (the original first reply) everywhere


def test_a_different_rekey_draws_different_keys(tmp_path) -> None:
    unl, ev = records(9, "u"), records(3, "d")
    keys = []
    for seed in (1, 2):
        write_bundle(
            tmp_path / str(seed),
            {"schema": "pairwise"},
            unl,
            np.full(9, 0.5),
            ev,
            rekey=np.random.default_rng(seed),
        )
        keys.append({r["id"] for r in rows(tmp_path / str(seed), UNLABELED)})
    assert not keys[0] & keys[1]


def test_rows_are_compact_utf8_json_lines_as_write_jsonl_writes_them(tmp_path) -> None:
    unl = [
        PairwiseRecord(id=f"u{i}", prompt='Ça "va" ?\n', first="日本\\", second="b", label="A")
        for i in range(3)
    ]
    write_bundle(
        tmp_path / "b", {"schema": "pairwise"}, unl, np.full(3, 0.5), unl, rekey=np.random.default_rng(1)
    )
    for name in (UNLABELED, DEV):
        raw = (tmp_path / "b" / name).read_bytes()
        assert raw.endswith(b"\n") and b"\n\n" not in raw
        for line in raw.decode("utf-8").splitlines():
            assert line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":"))


def test_a_swapped_pair_leaves_no_trace_in_the_bits_of_its_numbers(tmp_path) -> None:
    """Red team (stop 24): a swapped pair's prior was written as float64 ``1 - p`` (not a float32 like every
    real prior), its weak probability ``1 - p`` had zero low mantissa bits where ``p >= 0.5``, and a zero
    feature became ``-0.0``. Each told which pairs were swapped, and with the source's order, the label.
    Here each detector flags swapped and unswapped rows at the same rate."""
    from aarlab.testbed.bundle import FEATURES, PRIOR, WEAK

    rng = np.random.default_rng(0)
    n = 4000
    unl, ev = records(n, "u"), records(n, "d")
    weak = 1.0 / (1.0 + np.exp(-rng.normal(0, 2, n)))  # a teacher's float64 probabilities
    prior = (1.0 / (1.0 + np.exp(-rng.normal(0, 2, 2 * n)))).astype(np.float32)  # an encoder's float32
    feats = rng.normal(size=(2 * n, 6)).astype(np.float32)
    feats[:, :2] = 0.0  # pair features a - b: exactly zero where the two texts agree
    b = tmp_path / "b"
    write_bundle(
        b, {"schema": "pairwise"}, unl, weak, ev, features=feats, prior=prior, rekey=np.random.default_rng(3)
    )
    out_u, out_d = rows(b, UNLABELED), rows(b, DEV)
    swapped = np.array([r["first"].startswith("b") for r in out_u + out_d])
    assert 0.4 < swapped.mean() < 0.6
    w = np.array([json.loads((b / WEAK).read_text())[r["id"]] for r in out_u])
    pr, f = np.load(b / PRIOR), np.load(b / FEATURES)

    def rate_gap(flag: np.ndarray, sw: np.ndarray) -> float:
        return abs(float(flag[sw].mean()) - float(flag[~sw].mean()))

    assert rate_gap(np.float32(pr) != pr, swapped) < 0.05  # not a float32
    assert rate_gap(np.signbit(f[:, :2]).any(axis=1), swapped) < 0.05  # a -0.0
    low = w < 0.5  # below 0.5, a complemented p >= 0.5 has its lowest mantissa bit(s) zero
    lsb0 = (w.view(np.int64) & 1) == 0
    assert rate_gap(lsb0[low], swapped[:n][low]) < 0.06
    assert rate_gap(np.float32(w) != w, swapped[:n]) < 0.05
    # stop 25: rounded to the nearest grid point, float32 values below 0.5 (finer than the grid) gave an
    # even index 76% of the time and values above 50%, a parity that 1 - p keeps
    for v, sw in ((pr, swapped), (w, swapped[:n])):
        k = np.rint(v * 2.0**24).astype(np.int64)
        even_low = (k % 2 == 0) & (v < 0.5)
        assert rate_gap(even_low[v < 0.5], sw[v < 0.5]) < 0.05
        assert rate_gap((k % 2 == 0)[v > 0.5], sw[v > 0.5]) < 0.05
    # and the numbers still mean what they meant: the complement of the original, to 2^-24
    orig_w = dict(zip([r.id for r in unl], weak, strict=True))
    text_w = {r["prompt"]: v for r, v in zip(out_u, w, strict=True)}
    for r in unl[:200]:
        want = orig_w[r.id]
        got = text_w[r.prompt]
        sw = next(x for x in out_u if x["prompt"] == r.prompt)["first"].startswith("b")
        assert abs((1 - got if sw else got) - want) <= 2.0**-24


def test_a_swapped_pairs_prior_is_the_reversed_pairs_own_prior(tmp_path) -> None:
    """Red team (stop 25): a pair's zero-shot prior was centred at the pool's median, so the complement
    written for a swapped pair was not the reversed pair's prior: regressing logit(prior) on the written
    features left residuals at -median/std for unswapped rows and +median/std for swapped ones (83% of
    swap bits on champ-pairs). A pair's prior is now antisymmetric."""
    from aarlab.testbed.bundle import FEATURES, PRIOR
    from aarlab.testbed.models import zero_shot
    from aarlab.testbed.schema import item_from_record

    rng = np.random.default_rng(1)
    n, d = 1500, 12
    vecs = rng.normal(size=(2 * n, d)) + np.r_[1.0, np.zeros(d - 1)]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)  # unit-length, as mpnet's
    hyp = rng.normal(size=(2, d))
    unl = records(n, "u")
    items = [item_from_record(r, r.id or "") for r in unl]
    items = [type(it)(it.id, (f"{it.texts[0]}#{i}", f"{it.texts[1]}#{i}")) for i, it in enumerate(items)]
    prior_map = zero_shot(vecs, hyp, items)
    prior = np.array([prior_map[it.texts] for it in items])
    feats = (vecs[0::2] - vecs[1::2]).astype(np.float32)
    # the reversed pair's own prior is the complement (the property that hides the swap)
    rev = [type(it)(it.id, it.texts[::-1]) for it in items]
    flipped_vecs = np.empty_like(vecs)
    flipped_vecs[0::2], flipped_vecs[1::2] = vecs[1::2], vecs[0::2]
    rev_map = zero_shot(flipped_vecs, hyp, rev)
    assert np.allclose([rev_map[it.texts] for it in rev], 1 - prior, atol=1e-12)
    b = tmp_path / "b"
    write_bundle(
        b, {"schema": "pairwise"}, unl, np.full(n, 0.5), [], features=np.r_[feats],
        prior=prior, rekey=np.random.default_rng(5),
    )  # fmt: skip
    swapped = np.array([r["first"].startswith("b") for r in rows(b, UNLABELED)])
    f, pr = np.load(b / FEATURES).astype(np.float64), np.load(b / PRIOR)
    logit = np.log(pr / (1 - pr))
    X = np.c_[f, np.ones(len(f))]
    resid = logit - X @ np.linalg.lstsq(X, logit, rcond=None)[0]
    guess = resid > np.median(resid)
    acc = float(np.mean(guess == swapped))
    assert max(acc, 1 - acc) < 0.6, acc
