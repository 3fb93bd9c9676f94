"""The trusted side's per-seed artefacts are computed once, equal a fresh computation, cannot be changed by
a caller, go stale with the task's files; per-result verification seeds come from a secret per-task pool."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from aarlab.server.private import draw_seeds, seed_pool
from aarlab.testbed.loader import SPLIT_FILES, read_jsonl, write_jsonl
from aarlab.testbed.pipeline import prepare, seed_baseline
from aarlab.testbed.seeds import SEED_POOL_HIGH, SEED_POOL_LOW, SEED_POOL_SIZE
from aarlab.testbed.tasks import Task, split_by_entity
from aarlab.verify.artefacts import VERIFY_SPLIT, ArtefactCache

META = {"schema": "single", "weak": "tfidf", "strong": "tfidf"}


@pytest.fixture()
def task_dir(tmp_path: Path, tiny_task) -> Path:  # type: ignore[no-untyped-def]
    parts = split_by_entity(tiny_task.records, (0.25, 0.4, 0.35), 0)
    for name, recs in zip(SPLIT_FILES, parts, strict=True):
        write_jsonl(tmp_path / f"{name}.jsonl", recs)
    return tmp_path


def _fresh(directory: Path, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What verification computed per seed before the cache existed."""
    parts = {n: read_jsonl(directory / f"{n}.jsonl", "single")[1] for n in SPLIT_FILES}
    label, unlabel, _ = split_by_entity(parts["train_label"] + parts["train_unlabel"], VERIFY_SPLIT, seed)
    fixed = {"train_label": label, "train_unlabel": unlabel, "test": parts["test"]}
    task = Task("t", "single", [r for n in SPLIT_FILES for r in fixed[n]], fixed_splits=fixed)
    base = seed_baseline(prepare(task, "tfidf", "tfidf", show_progress=False), seed, use_cache=False)
    return base.weak_unlabel, base.weak_test, base.ceiling_test


def test_seed_artefacts_are_made_once_equal_a_fresh_run_and_are_read_only(task_dir: Path) -> None:
    cache = ArtefactCache()
    first = cache.seed("t", task_dir, META, 5)
    assert cache.seed("t", task_dir, META, 5) is first and (cache.hits, cache.misses) == (1, 1)
    weak_unlabel, weak_test, ceiling_test = _fresh(task_dir, 5)
    assert np.allclose(first.base.weak_unlabel, weak_unlabel, atol=1e-6)
    assert np.allclose(first.base.weak_test, weak_test, atol=1e-6)
    assert np.allclose(first.base.ceiling_test, ceiling_test, atol=1e-6)
    n = len(first.unlabeled) + len(first.evaluation)
    assert first.features().shape[0] == n and first.prior.shape == (n,)
    with pytest.raises(ValueError):
        first.base.weak_unlabel[0] = 1.0  # what one verification got, the next gets unchanged
    other = cache.seed("t", task_dir, META, 6)
    assert [r.id for r in other.unlabeled] != [r.id for r in first.unlabeled]  # the seed re-splits


def test_an_edited_task_is_never_served_stale(task_dir: Path) -> None:
    cache = ArtefactCache()
    before = cache.seed("t", task_dir, META, 5)
    path = task_dir / "test.jsonl"
    recs = read_jsonl(path, "single")[1]
    write_jsonl(path, recs[:-1])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    after = cache.seed("t", task_dir, META, 5)
    assert after is not before and len(after.evaluation) == len(before.evaluation) - 1


def test_verification_seeds_come_from_a_secret_pool_without_repeats_nearby() -> None:
    pool = seed_pool(b"secret", "task")
    assert len(set(pool)) == SEED_POOL_SIZE and all(SEED_POOL_LOW <= s < SEED_POOL_HIGH for s in pool)
    assert seed_pool(b"other", "task") != pool and seed_pool(b"secret", "task2") != pool
    drawn = [draw_seeds(b"secret", "task", rid, 3) for rid in range(1, 1 + SEED_POOL_SIZE // 3)]
    assert all(len(set(d)) == 3 and set(d) <= set(pool) for d in drawn)
    flat = [s for d in drawn for s in d]
    assert len(set(flat)) == len(flat)  # no two of these consecutive results share a seed
    assert draw_seeds(b"secret", "task", 7, 3) == draw_seeds(b"secret", "task", 7, 3)  # reproducible
    assert json.dumps(draw_seeds(b"secret", "task", 1, 40))  # more seeds than the pool holds still works


def test_the_worker_prepares_the_seeds_the_next_results_will_draw(tmp_path: Path, task_dir: Path) -> None:
    from aarlab.server.datadir import init_task, read_secret
    from aarlab.server.datadir import task_dir as server_task_dir
    from aarlab.server.warm import prefetch_seed_pool
    from aarlab.verify.artefacts import ARTEFACTS

    data = tmp_path / "data"
    init_task(data, str(task_dir), name="t")
    folder = server_task_dir(data, "t")
    meta = {**json.loads((folder / "task.json").read_text()), "weak": "tfidf", "strong": "tfidf"}
    (folder / "task.json").write_text(json.dumps(meta))
    ARTEFACTS.clear()
    thread = prefetch_seed_pool(data, "t", [4, 5], 2)
    assert thread is not None
    thread.join(timeout=600)
    wanted = {s for rid in (4, 5) for s in draw_seeds(read_secret(data), "t", rid, 2)}
    assert ARTEFACTS.misses == len(wanted) == 4
    for s in wanted:  # a verification of result 4 or 5 now finds its seeds ready
        ARTEFACTS.seed("t", folder, meta, s)
    assert ARTEFACTS.hits == 4 and ARTEFACTS.misses == 4
