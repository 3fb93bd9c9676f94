"""Verification during a research run: the server's one job loop (:func:`aarlab.server.jobloop.job_loop`)
in a worker process (the local default) or in a thread handing jobs to Ray, so verified scores (and
flags) appear while agents work, not after; :meth:`drain` verifies what is left when they are done.

The worker process (``python -m aarlab.lab.verification``) gets its settings as one validated JSON
object (:class:`WorkerConfig`) on stdin and reports ``@aarlab-event`` lines (``verified``, ``error``) on
stdout; it finishes the batch it claimed and exits when its stdin closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from aarlab.server.jobloop import JobQueue, count_results, job_loop
from aarlab.verify.executors import Executor, get_executor
from aarlab.verify.runner import VerifySettings

EVENT = "@aarlab-event "


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(EVENT + json.dumps(event) + "\n")
    sys.stdout.flush()


class WorkerConfig(BaseModel):
    """What the verification worker process needs: the server's storage and the verification settings.
    ``setup``: ``module:function`` called first (e.g. to register extra tasks)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path
    db_url: str | None = None
    storage_url: str | None = None
    storage_options: dict[str, Any] | None = None
    seeds: list[int]
    ablation_seeds: int
    limits: dict[str, Any]
    workers: int = 1
    poll: float = 1.0
    setup: str | None = None

    def verify_settings(self) -> VerifySettings:
        from aarlab.verify.sandbox import Limits

        return VerifySettings(
            seeds=tuple(self.seeds), ablation_seeds=self.ablation_seeds, limits=Limits(**self.limits)
        )


def _local_queue(
    state: Any, data_dir: Path, executor: Executor, settings: VerifySettings, batch: int
) -> JobQueue:
    return JobQueue(state.sessions, data_dir, executor, store=state.store, settings=settings, batch=batch)


class VerifyProcess:
    """The verification worker as a child process of the lab (the local default).

    It runs the job loop on its own connection to the server's database (SQLite WAL), so it shares no
    interpreter (GIL) with the in-process server answering every agent's requests; on 2 cores that alone
    made no measurable difference (one BLAS thread per verification child and two verifications at once
    did: bench/research.py). :meth:`drain` lets it finish the queue; what a dead worker left is verified
    here."""

    def __init__(
        self,
        state: Any,
        data_dir: Path,
        settings: VerifySettings,
        *,
        workers: int = 1,
        poll: float = 1.0,
        setup: str | None = None,
    ) -> None:
        self._state, self._data_dir, self._settings = state, data_dir, settings
        self._workers, self._poll, self._setup = workers, poll, setup
        self.processed = 0
        self.errors: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> VerifyProcess:
        srv = self._state.settings
        config = WorkerConfig(
            data_dir=self._data_dir,
            db_url=srv.db_url,
            storage_url=srv.storage_url,
            storage_options=srv.storage_options,
            seeds=list(self._settings.seeds),
            ablation_seeds=self._settings.ablation_seeds,
            limits=dataclasses.asdict(self._settings.limits),
            workers=self._workers,
            poll=self._poll,
            setup=self._setup,
        )
        env = dict(os.environ)  # the trusted side: it keeps the data dir; one BLAS thread (shared cores)
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(key, "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "aarlab.lab.verification"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(config.model_dump_json() + "\n")
        self._proc.stdin.flush()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.startswith(EVENT):
                continue
            with contextlib.suppress(ValueError):
                ev = json.loads(line[len(EVENT) :])
                if ev.get("type") == "verified":
                    self.processed += int(ev["n"])
                elif ev.get("type") == "error":
                    self.errors.append(str(ev["message"]))

    def stop(self) -> None:
        """Close the worker's stdin: it finishes the batch it has claimed, then exits."""
        if self._proc is None:
            return
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=1800)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._proc.returncode not in (0, None):
            self.errors.append(f"verification worker exited with {self._proc.returncode}")
        self._proc = None

    def drain(self, on_batch: Callable[[int], None] | None = None) -> int:
        """Let the worker verify what is still queued (its zygote and caches are warm by now; a fresh
        one here cost the quick demo ~5 s of start-up), then stop it and verify here only what a worker
        that died left behind; returns the total processed. ``on_batch(n)`` is told as results are done."""
        told = self.processed

        def tell() -> None:
            nonlocal told
            if on_batch is not None and self.processed > told:
                on_batch(self.processed - told)
            told = self.processed

        while self._proc is not None and self._proc.poll() is None:
            tell()
            if count_results(self._state.sessions, ("queued", "running")) == 0:
                break
            time.sleep(min(self._poll, 0.25))
        self.stop()
        tell()
        ex = get_executor("local", workers=self._workers)
        try:
            queue = _local_queue(self._state, self._data_dir, ex, self._settings, max(2, self._workers))
            queue.requeue_running()  # only if the worker died mid-batch: no other worker runs
            self.processed += job_loop(queue, once=True, on_batch=on_batch)
        finally:
            ex.close()
        return self.processed


def worker_main() -> int:
    """``python -m aarlab.lab.verification``: verify queued results until stdin closes. Config: one
    :class:`WorkerConfig` JSON line on stdin."""
    cfg = WorkerConfig.model_validate_json(sys.stdin.readline())
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the lab closed the pipe (or died)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    from aarlab.verify.sandbox import prestart_zygote

    prestart_zygote(cfg.verify_settings().limits)
    if cfg.setup:
        mod, _, fn = cfg.setup.partition(":")
        getattr(importlib.import_module(mod), fn)()
    from aarlab.server.codestore import CodeStore
    from aarlab.server.db import make_engine, session_factory
    from aarlab.server.settings import ServerSettings

    settings = ServerSettings(
        data_dir=cfg.data_dir,
        db_url=cfg.db_url,
        storage_url=cfg.storage_url,
        storage_options=cfg.storage_options or {},
    )
    engine = make_engine(settings.database_url)
    store = CodeStore(settings.code_url, settings.storage_options)
    ex = get_executor("local", workers=cfg.workers)
    queue = JobQueue(
        session_factory(engine),
        settings.data_dir,
        ex,
        store=store,
        settings=cfg.verify_settings(),
        batch=max(2, cfg.workers),
    )
    try:
        job_loop(
            queue,
            stop=stop,
            poll=cfg.poll,
            on_batch=lambda n: _emit({"type": "verified", "n": n}),
            on_error=lambda e: _emit({"type": "error", "message": f"{type(e).__name__}: {e}"[:2000]}),
        )
    finally:
        ex.close()
        engine.dispose()
    return 0


class VerifyLoop:
    """The job loop as a background thread of the lab (with Ray: it hands jobs to Ray tasks)."""

    def __init__(
        self,
        state: Any,
        data_dir: Path,
        executor: Executor,
        settings: VerifySettings,
        poll: float = 1.0,
        batch: int = 2,
    ) -> None:
        # small batches: new results interleave, and stop() returns promptly
        self._queue = _local_queue(state, data_dir, executor, settings, batch)
        self._poll = poll
        self._stop = threading.Event()
        self.processed = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="aarlab-verify-loop", daemon=True)

    def start(self) -> VerifyLoop:
        self._thread.start()
        return self

    def _count(self, n: int) -> None:
        self.processed += n

    def _run(self) -> None:
        job_loop(
            self._queue,
            stop=self._stop,
            poll=self._poll,
            on_batch=self._count,
            on_error=lambda e: self.errors.append(f"{type(e).__name__}: {e}"),
        )

    def stop(self) -> None:
        """Stop after the batch in progress (results it claimed are finished, not abandoned)."""
        self._stop.set()
        self._thread.join()

    def drain(self, on_batch: Callable[[int], None] | None = None) -> int:
        """Stop the thread and verify what is still queued, here; returns the total processed.
        ``on_batch(n)`` is told after each batch of ``n`` results."""
        self.stop()

        def batch(n: int) -> None:
            self._count(n)
            if on_batch is not None:
                on_batch(n)

        job_loop(self._queue, once=True, on_batch=batch)
        return self.processed


if __name__ == "__main__":  # the verification worker process
    raise SystemExit(worker_main())
