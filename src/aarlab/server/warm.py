"""Trusted preparation ahead of the verification jobs: the encoders and each task's features before jobs
run in parallel, and the artefacts of the seeds the next results will draw in the background while they
run."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from aarlab.server.datadir import read_secret, task_dir
from aarlab.server.private import draw_seeds
from aarlab.testbed.encoders import encoder_specs
from aarlab.testbed.pipeline import prepare
from aarlab.testbed.tasks import load_task
from aarlab.verify.artefacts import ARTEFACTS

__all__ = ["prefetch_seed_pool", "warm_up"]


def warm_up(data_dir: Path, tasks: Sequence[str]) -> None:
    """Load the encoder registry, unpack the encoders' models and encode each task once, here, before
    jobs run in parallel. The testbed's lazy loaders are not safe to race: the registry marks itself
    loaded before its import finishes (a second thread sees no encoders), and a model is reassembled
    into a fixed ``.partial`` folder (two jobs unpacking at once break each other). Afterwards every job
    finds the models unpacked and the features in the on-disk cache. Best effort: an error here is
    left for the job itself to report on its result."""
    encoder_specs()
    for task in tasks:
        try:
            folder = task_dir(data_dir, task)
            meta = json.loads((folder / "task.json").read_text())
            prepare(load_task(str(folder)), meta["weak"], meta["strong"], show_progress=False)
        except Exception:
            continue


_PREFETCHING: set[tuple[str, str]] = set()
_PREFETCH_LOCK = threading.Lock()


def prefetch_seed_pool(
    data_dir: Path, task: str, next_results: Sequence[int], k: int
) -> threading.Thread | None:
    """Prepare the trusted artefacts (split, teacher, ceiling) of the pool seeds that the results with
    ids ``next_results`` will draw (``k`` seeds each, :func:`aarlab.server.private.draw_seeds`) in a
    background thread of this process (at most one per task at a time), so that their verifications
    find them ready (:data:`aarlab.verify.artefacts.ARTEFACTS`) and no seed is prepared that no result
    uses. Returns the thread, or None when one is already running for the task. Best effort: errors
    are left to the jobs."""
    key = (str(data_dir), task)
    with _PREFETCH_LOCK:
        if key in _PREFETCHING:
            return None
        _PREFETCHING.add(key)

    def work() -> None:
        try:
            folder = task_dir(data_dir, task)
            meta = json.loads((folder / "task.json").read_text())
            secret = read_secret(data_dir)
            seeds = dict.fromkeys(s for rid in next_results for s in draw_seeds(secret, task, rid, k))
            ARTEFACTS.prefetch(task, folder, meta, list(seeds))
        except Exception:
            pass
        finally:
            with _PREFETCH_LOCK:
                _PREFETCHING.discard(key)

    t = threading.Thread(target=work, name=f"aarlab-prefetch-{task}", daemon=True)
    t.start()
    return t
