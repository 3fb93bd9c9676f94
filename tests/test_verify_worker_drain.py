"""The lab's verification worker finishes the queue itself at the end of a run (its zygote and caches
are warm; starting a fresh zygote in the lab to drain cost the quick demo ~5 s), and the lab verifies
only what a worker that died left behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aarlab.lab.verification as lv
from aarlab.verify.runner import VerifySettings


class FakeProc:
    def __init__(self, alive: bool) -> None:
        self.alive, self.stdin, self.returncode = alive, None, None if alive else 1

    def poll(self) -> int | None:
        return None if self.alive else 1

    def wait(self, timeout: float | None = None) -> int:
        self.alive = False
        self.returncode = 0
        return 0

    def kill(self) -> None:
        self.alive = False


def _worker(monkeypatch, alive: bool, queued: list[int], local: int) -> tuple[lv.VerifyProcess, list[int]]:
    state = SimpleNamespace(sessions=None, store=None)
    w = lv.VerifyProcess(state=state, data_dir=Path("/nonexistent"), settings=VerifySettings(), poll=0.05)
    w._proc = FakeProc(alive)  # type: ignore[assignment]
    monkeypatch.setattr(lv, "count_results", lambda sessions, statuses: queued[0])
    ran_here: list[int] = []

    def job_loop(queue: Any, once: bool, on_batch: Any) -> int:
        ran_here.append(local)
        if local and on_batch:
            on_batch(local)
        return local

    class Queue:
        def requeue_running(self) -> None:
            pass

    monkeypatch.setattr(lv, "job_loop", job_loop)
    monkeypatch.setattr(lv, "_local_queue", lambda *a, **k: Queue())
    return w, ran_here


def test_a_live_worker_drains_the_queue_and_the_lab_verifies_nothing(monkeypatch):
    queued = [3]
    w, ran_here = _worker(monkeypatch, alive=True, queued=queued, local=0)

    def worker_verifies() -> None:  # what the reader thread does on the worker's "verified" events
        for _ in range(3):
            time.sleep(0.1)
            w.processed += 1
            queued[0] -= 1

    t = threading.Thread(target=worker_verifies)
    t.start()
    told: list[int] = []
    assert w.drain(on_batch=told.append) == 3
    t.join()
    assert sum(told) == 3 and ran_here == [0]  # the lab's own pass found nothing left


def test_what_a_dead_worker_left_is_verified_here(monkeypatch):
    w, ran_here = _worker(monkeypatch, alive=False, queued=[2], local=2)
    told: list[int] = []
    assert w.drain(on_batch=told.append) == 2
    assert ran_here == [2] and told == [2]
