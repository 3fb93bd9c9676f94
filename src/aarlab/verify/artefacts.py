"""The trusted side's method-independent work, done once: per task the encoded pool, per verification
seed the re-split task, the weak teacher, the ceiling and the student's features.

None of it depends on the method being verified, so every verification of every result on the same
(task, seed, model pair) reuses it. The cache lives in the trusted process's memory only (never on disk
where submitted code could write, never in a bundle beyond what a run already gets); every array it
hands out is read-only, so a caller cannot change what the next verification sees. Entries are keyed by
the task folder, the size and modification time of its split files, the model pair and the seed, so an
edited task is never served stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.testbed.loader import SPLIT_FILES, read_jsonl
from aarlab.testbed.pipeline import Prepared, SeedBaseline, prepare, seed_baseline, task_fingerprint
from aarlab.testbed.schema import Record
from aarlab.testbed.tasks import Task, split_by_entity

#: The trusted parent's numeric work (teacher and ceiling training, scoring) runs one job at a time:
#: concurrent BLAS calls from several worker threads were seen to spin forever in OpenBLAS. The
#: sandboxed method runs, where the time goes, still overlap.
PARENT_LOCK = threading.RLock()

#: Verification re-splits the task's training pool with these shares (label, unlabel, -) per seed.
VERIFY_SPLIT = (0.25, 0.40, 0.0)


@dataclass(frozen=True)
class SeedArtefacts:
    """What the trusted parent prepares for one verification seed (arrays read-only).

    ``prior``: the strong student's zero-shot prior for the unlabeled items then the evaluation items,
    shape (n_unlabeled + n_eval,)."""

    task: Task
    prep: Prepared
    base: SeedBaseline
    unlabeled: list[Record]
    evaluation: list[Record]
    prior: np.ndarray

    def features(self) -> np.ndarray:
        """The strong student's feature rows in the same order, shape (n_unlabeled + n_eval, d): a
        fresh array from the task's pool table (not kept per seed, to keep the cache small)."""
        strong = self.prep.strong_model(0)
        splits = self.base.splits
        return np.vstack([strong.features(splits.train_unlabel.inputs), strong.features(splits.test.inputs)])


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _stamp(directory: Path) -> tuple[Any, ...]:
    out: list[Any] = [str(directory.resolve())]
    for name in SPLIT_FILES:
        st = (directory / f"{name}.jsonl").stat()
        out += [name, st.st_size, st.st_mtime_ns]
    return tuple(out)


class ArtefactCache:
    """A bounded, thread-safe LRU of :class:`SeedArtefacts` (and of each task's encoded pool).

    ``seeds``: how many seed entries are kept (each holds the split and a few vectors of its task; the
    student's feature matrix is shared with the task's pool table). Use :data:`ARTEFACTS`, the process's
    one cache; ``clear()`` forgets everything."""

    def __init__(self, seeds: int = 128, tasks: int = 8) -> None:
        self._max_seeds, self._max_tasks = seeds, tasks
        self._seeds: OrderedDict[tuple[Any, ...], SeedArtefacts] = OrderedDict()
        self._tasks: OrderedDict[tuple[Any, ...], tuple[dict[str, list[Record]], Prepared]] = OrderedDict()
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        with self._lock:
            self._seeds.clear()
            self._tasks.clear()
            self.hits = self.misses = 0

    def _task(
        self, name: str, directory: Path, meta: dict[str, Any]
    ) -> tuple[dict[str, list[Record]], Prepared]:
        key = (*_stamp(directory), meta["weak"], meta["strong"])
        with self._lock:
            if key in self._tasks:
                self._tasks.move_to_end(key)
                return self._tasks[key]
        schema = meta["schema"]
        parts = {n: read_jsonl(directory / f"{n}.jsonl", schema)[1] for n in SPLIT_FILES}
        whole = Task(name=name, schema=schema, records=[r for n in SPLIT_FILES for r in parts[n]])
        prep = prepare(whole, meta["weak"], meta["strong"], show_progress=False)
        with self._lock:
            self._tasks[key] = (parts, prep)
            while len(self._tasks) > self._max_tasks:
                self._tasks.popitem(last=False)
        return parts, prep

    def seed(self, name: str, directory: Path, meta: dict[str, Any], seed: int) -> SeedArtefacts:
        """The artefacts of ``seed`` on the task in ``directory`` (labelled reference format; ``meta``
        names its schema and model pair), computed on the first call and reused after. Errors of reading
        or encoding the task propagate (``AarlabError``, ``OSError``)."""
        key = (*_stamp(directory), meta["weak"], meta["strong"], int(seed))
        with self._lock:
            if key in self._seeds:
                self._seeds.move_to_end(key)
                self.hits += 1
                return self._seeds[key]
            self.misses += 1
        with PARENT_LOCK:
            with self._lock:  # another thread (the pool's prefetch) may have made it meanwhile
                ready = self._seeds.get(key)
            art = ready if ready is not None else self._compute(name, directory, meta, seed)
        with self._lock:
            self._seeds[key] = art
            while len(self._seeds) > self._max_seeds:
                self._seeds.popitem(last=False)
        return art

    def _compute(self, name: str, directory: Path, meta: dict[str, Any], seed: int) -> SeedArtefacts:
        parts, whole = self._task(name, directory, meta)
        pool = parts["train_label"] + parts["train_unlabel"]
        label, unlabel, _ = split_by_entity(pool, VERIFY_SPLIT, seed)
        fixed = {"train_label": label, "train_unlabel": unlabel, "test": parts["test"]}
        task = Task(
            name=name,
            schema=meta["schema"],
            records=[r for n in SPLIT_FILES for r in fixed[n]],
            fixed_splits=fixed,
        )
        # the pool's features are looked up by text: the task's encoded pool serves every re-split
        prep = replace(whole, task=task, fingerprint=task_fingerprint(task))
        base = seed_baseline(prep, seed, use_cache=False)
        strong = prep.strong_model(seed)
        unl, test = base.splits.train_unlabel.inputs, base.splits.test.inputs
        prior = _frozen(np.concatenate([strong.prior(unl), strong.prior(test)]))
        base = replace(
            base,
            weak_unlabel=_frozen(base.weak_unlabel),
            weak_test=_frozen(base.weak_test),
            ceiling_test=_frozen(base.ceiling_test),
        )
        return SeedArtefacts(task, prep, base, unlabel, parts["test"], prior)

    def prefetch(self, name: str, directory: Path, meta: dict[str, Any], seeds: Iterable[int]) -> int:
        """Prepare ``seeds`` ahead (best effort: a seed that fails is left for its verification to
        report); returns how many were prepared now."""
        done = 0
        for s in seeds:
            try:
                before = self.misses
                self.seed(name, directory, meta, s)
                done += self.misses - before
            except Exception:
                continue
        return done


#: The process's cache (the verification worker's threads share it).
ARTEFACTS = ArtefactCache()
