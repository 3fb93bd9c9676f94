"""The one verification job loop: drain the server's queue of results in batches.

Every caller runs :func:`job_loop` over a :class:`JobQueue`: the ``aarlab verify`` worker (with counts
and an ETA, then the transfer gate when the queue is empty), the lab's verification worker process
(:mod:`aarlab.lab.verification`, while agents work) and the lab's worker thread handing jobs to Ray.
The loop checks ``stop`` between batches only, so results it claimed are finished, never abandoned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from aarlab.server.codestore import CodeStore
from aarlab.server.db import session_scope
from aarlab.server.models import Result
from aarlab.server.worker import requeue_running, verify_pending
from aarlab.verify.executors import Executor
from aarlab.verify.runner import VerifySettings


def count_results(sessions: sessionmaker[Session], statuses: Sequence[str] = ("queued",)) -> int:
    """How many results of the server have one of ``statuses`` (default: still queued)."""
    with session_scope(sessions) as s:
        q = select(func.count()).select_from(Result).where(Result.status.in_(tuple(statuses)))
        return int(s.scalar(q) or 0)


@dataclass
class JobQueue:
    """The server's queue of results to verify (its database, data directory and code store) and how to
    verify them: ``executor``, ``settings``, ``batch`` results claimed at once, the Ladder's step."""

    sessions: sessionmaker[Session]
    data_dir: Path
    executor: Executor
    store: CodeStore | None = None
    settings: VerifySettings | None = None
    batch: int = 2
    ladder_step: float = 0.01

    def count(self, statuses: Sequence[str] = ("queued",)) -> int:
        """How many results have one of ``statuses`` (default: still queued)."""
        return count_results(self.sessions, statuses)

    def verify_batch(self) -> int:
        """Claim and verify at most ``batch`` queued results; returns how many were processed (0: none
        queued). Raises SandboxUnavailable before claiming anything without the kernel confinement."""
        return verify_pending(
            self.sessions,
            self.data_dir,
            self.executor,
            store=self.store,
            settings=self.settings,
            limit=self.batch,
            ladder_step=self.ladder_step,
        )

    def requeue_running(self) -> int:
        """Put results a dead worker left ``running`` back in the queue (only when no worker runs);
        returns how many."""
        return requeue_running(self.sessions)


def job_loop(
    queue: JobQueue,
    *,
    stop: threading.Event | None = None,
    poll: float = 1.0,
    once: bool = False,
    on_burst: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_idle: Callable[[int], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> int:
    """Verify queued results batch by batch until ``stop`` is set (checked between batches); returns how
    many results were processed.

    A *burst* verifies until the queue is empty: ``on_burst(queued)`` first (only when results are
    queued; with none queued no batch runs),
    ``on_batch(n)`` after each batch of ``n`` results, then ``on_idle(total of the burst)`` once the
    queue is empty. With ``once`` the loop returns after the first burst; else it waits ``poll`` seconds
    (or until ``stop``) and looks again. An exception from a batch goes to ``on_error`` and ends the
    burst (the loop goes on after ``poll``); without ``on_error`` it propagates."""
    stop = stop or threading.Event()
    total = 0
    while not stop.is_set():
        burst = 0
        queued = queue.count()  # nothing queued: no batch (and no confinement check) this time
        if queued and on_burst is not None:
            on_burst(queued)
        while queued and not stop.is_set():
            try:
                n = queue.verify_batch()
            except Exception as e:
                if on_error is None:
                    raise
                on_error(e)
                n = 0
            if not n:
                break
            burst += n
            total += n
            if on_batch is not None:
                on_batch(n)
        if on_idle is not None:
            on_idle(burst)
        if once:
            break
        stop.wait(poll)
    return total
