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
