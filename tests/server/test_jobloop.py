"""The one verification job loop: bursts until the queue is empty, stop between batches only, errors to
the caller's handler (or raised), nothing run when nothing is queued."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aarlab.server.jobloop import job_loop


class FakeQueue:
    """A queue of ``pending`` results verified ``batch`` at a time; ``fail`` batches raise first."""

    def __init__(self, pending: int, batch: int = 2, fail: int = 0) -> None:
        self.pending, self.batch, self.fail = pending, batch, fail
        self.batches = 0
        self.on_batch: Any = None

    def count(self, statuses: Any = ("queued",)) -> int:
        return self.pending

    def verify_batch(self) -> int:
        self.batches += 1
        if self.fail:
            self.fail -= 1
            raise RuntimeError("store failed")
        n = min(self.batch, self.pending)
        self.pending -= n
        if self.on_batch is not None:
            self.on_batch()
        return n


def test_once_drains_the_queue_in_batches_and_reports_each_step() -> None:
    q = FakeQueue(5)
    seen: list[tuple[str, int]] = []
    total = job_loop(
        q,  # type: ignore[arg-type]
        once=True,
        on_burst=lambda n: seen.append(("burst", n)),
        on_batch=lambda n: seen.append(("batch", n)),
        on_idle=lambda n: seen.append(("idle", n)),
    )
    assert total == 5 and q.pending == 0
    assert seen == [("burst", 5), ("batch", 2), ("batch", 2), ("batch", 1), ("idle", 5)]


def test_nothing_queued_runs_no_batch() -> None:
    q = FakeQueue(0)
    idle: list[int] = []
    assert job_loop(q, once=True, on_idle=idle.append) == 0  # type: ignore[arg-type]
    assert q.batches == 0 and idle == [0]


def test_stop_is_honoured_between_batches_only() -> None:
    q = FakeQueue(10)
    stop = threading.Event()
    q.on_batch = stop.set  # asked to stop during the first batch: that batch still finishes
    assert job_loop(q, stop=stop, poll=0.01) == 2  # type: ignore[arg-type]
    assert q.pending == 8 and q.batches == 1


def test_an_error_goes_to_the_handler_and_the_loop_goes_on() -> None:
    q = FakeQueue(3, fail=1)
    errors: list[str] = []
    stop = threading.Event()
    done: list[int] = []

    def idle(n: int) -> None:
        done.append(n)
        if q.pending == 0:
            stop.set()

    total = job_loop(q, stop=stop, poll=0.01, on_idle=idle, on_error=lambda e: errors.append(str(e)))  # type: ignore[arg-type]
    assert errors == ["store failed"] and total == 3 and done == [0, 3]
    with pytest.raises(RuntimeError, match="store failed"):  # without a handler it propagates
        job_loop(FakeQueue(1, fail=1), once=True)  # type: ignore[arg-type]
