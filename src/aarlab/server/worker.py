"""The verification worker: turns queued results into verified scores and review-queue flags.

The server never scores a result itself; this worker claims queued results (``queued -> running``),
unpacks each snapshot into ``<data dir>/work/result-<id>/``, re-executes it with
:func:`aarlab.verify.runner.verify` through an executor (local threads or Ray), and records the outcome:
``verified`` with a :class:`VerifiedScore`, or ``failed`` with the reason, plus every flag. It also runs
the probing detector over each agent's dev-submission log. :func:`run_job` is a top-level function of an
importable module so that Ray workers can unpickle it; everything it needs travels in the job.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from aarlab.api.archive import safe_extract
from aarlab.oversight.flags import Flag, probing_flags
from aarlab.sandbox import require_confinement
from aarlab.server.codestore import CodeStore
from aarlab.server.datadir import EvalTask, load_eval_task, read_secret, task_dir
from aarlab.server.db import session_scope
from aarlab.server.flag_rows import finite, flag_row, jsonable
from aarlab.server.models import DevSubmission, Result, ReviewFlag, VerifiedScore
from aarlab.server.private import dev_vector, draw_seeds, release_dev
from aarlab.server.warm import prefetch_seed_pool, warm_up
from aarlab.verify.executors import Executor
from aarlab.verify.runner import TaskSource, VerifiedRun, VerifySettings, verify

#: Folder of the data directory where snapshots are unpacked and re-executed (never forbidden).
WORK = "work"


@dataclass(frozen=True)
class VerifyJob:
    """Everything one verification needs, picklable so that a Ray worker can run it elsewhere."""

    result_id: int
    task: str
    data_dir: str
    snapshot: bytes
    config: dict[str, Any]
    claimed: dict[str, float]
    settings: VerifySettings
    #: Paths beyond the data directory that the method must never read (the SQLite database files).
    forbidden: tuple[str, ...] = ()


@dataclass
class JobOutcome:
    """What a job established; a verifier crash is a ``failed`` run whose reason names the error."""

    result_id: int
    run: VerifiedRun = field(default_factory=lambda: VerifiedRun("failed", "not run"))


def task_source(data_dir: Path, task: str, forbidden: Sequence[str] = ()) -> TaskSource:
    """The verifier's view of a server task: its labelled folder, metadata and dev/sealed partition."""
    meta = json.loads((task_dir(data_dir, task) / "task.json").read_text())
    ev = load_eval_task(data_dir, task)
    is_dev = {it.id: True for it in ev.dev.items} | {it.id: False for it in ev.sealed.items}
    return TaskSource(task, task_dir(data_dir, task), meta, is_dev, forbidden=tuple(forbidden))


def forbidden_for(data_dir: Path, own_work: Path, extra: Sequence[str] = ()) -> list[str]:
    """The data directory itself, everything in it (tasks with labels, the secret, the database, the
    code store, other results' work) and ``extra``: what the audit telemetry reports a method for
    touching. None of it is in the sandbox's root (the method sees its folder at ``/sandbox/method``), so
    this list is evidence, not the barrier."""
    out = [str(data_dir)]
    out += [str(p) for p in data_dir.iterdir() if p.name != WORK] if data_dir.is_dir() else []
    work = data_dir / WORK
    if work.is_dir():
        out += [str(p) for p in work.iterdir() if p.resolve() != own_work.resolve()]
    return out + list(extra)


def server_failure(what: str, error: BaseException) -> VerifiedRun:
    """A ``failed`` run for an error on the trusted side. The agent reads only ``what`` (a fixed
    phrase): an error's text can quote anything the server holds (a database error quotes the INSERT's
    parameters, among them the sealed figures of the run's findings), so it goes to overseers as the
    evidence of a ``verify/server-error`` flag."""
    detail = f"{what}: {type(error).__name__}: {error}"
    return VerifiedRun(
        "failed",
        f"{what} (an error on the server's side; an overseer can see it)",
        flags=[
            Flag(
                "verify/server-error", "warn", f"{what} ({type(error).__name__})", {"detail": detail[-6000:]}
            )
        ],
    )


def run_job(job: VerifyJob) -> JobOutcome:
    """Verify one result (the executor's job function). Never raises: any error becomes a failed run."""
    data_dir = Path(job.data_dir)
    work = data_dir / WORK / f"result-{job.result_id}"
    try:
        shutil.rmtree(work, ignore_errors=True)
        method_dir = work / "method"
        safe_extract(job.snapshot, method_dir)
        if not (method_dir / "method.py").is_file():
            why = (
                "the snapshot has no method.py at its root; pack the method folder itself "
                "(Client.put_folder(folder) or `tar czf - -C folder .`)"
            )
            return JobOutcome(job.result_id, VerifiedRun("failed", why))
        source = task_source(data_dir, job.task, forbidden_for(data_dir, work, job.forbidden))
        run = verify(
            source,
            method_dir,
            job.config or None,
            work / "run",
            claimed=job.claimed or None,
            settings=job.settings,
        )
        return JobOutcome(job.result_id, run)
    except Exception as e:  # the worker must go on with the other results
        return JobOutcome(job.result_id, server_failure("the verifier failed on this result", e))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sqlite_files(engine: Engine | None) -> list[str]:
    """The database file and its WAL/journal companions when the database is SQLite (else nothing)."""
    if engine is None or not engine.url.drivername.startswith("sqlite") or not engine.url.database:
        return []
    db = str(Path(engine.url.database).resolve())
    return [db, db + "-wal", db + "-shm", db + "-journal"]


def claim_queued(sessions: sessionmaker[Session], limit: int | None = None) -> list[int]:
    """Mark queued results ``running`` and return their ids (row locks keep two workers apart on
    PostgreSQL; SQLite serialises writers anyway)."""
    with session_scope(sessions) as s:
        q = (
            select(Result)
            .where(Result.status == "queued")
            .order_by(Result.id)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            q = q.limit(limit)
        rows = list(s.scalars(q))
        for r in rows:
            r.status = "running"
        return [r.id for r in rows]


def requeue_running(sessions: sessionmaker[Session]) -> int:
    """Put results left ``running`` by a worker that died back in the queue; returns how many.
    Only safe when no other worker is running (``aarlab verify --requeue`` at a lone worker's start)."""
    with session_scope(sessions) as s:
        rows = list(s.scalars(select(Result).where(Result.status == "running")))
        for r in rows:
            r.status = "queued"
        return len(rows)


def record_outcome(
    session: Session, outcome: JobOutcome, ev: EvalTask | None = None, ladder_step: float = 0.01
) -> Result:
    """Store a run: the result's status and reason, its verified score (with the seeds drawn for it, the
    dev prediction vector and the dev score the result Ladder releases to agents, given the task ``ev``),
    and every flag it raised."""
    result = session.get(Result, outcome.result_id)
    if result is None:
        raise LookupError(f"result {outcome.result_id} vanished while it was being verified")
    run = outcome.run
    result.status = run.status
    result.reason = run.reason or None
    result.verified_at = datetime.now(UTC)
    if run.status == "verified":
        dev_ci, pgr_ci, sealed_ci = run.dev_ci or (None, None), run.pgr_ci or (None, None), run.sealed_ci
        st_ci = run.pgr_structured_ci or (None, None)
        vec = dev_vector(ev, run.dev_predictions) if ev is not None and run.dev_predictions else None
        session.add(
            VerifiedScore(
                result_id=result.id,
                task=result.task,
                dev_acc=finite(run.dev_acc),
                dev_low=finite(dev_ci[0]),
                dev_high=finite(dev_ci[1]),
                sealed_acc=finite(run.sealed_acc),
                sealed_low=finite(sealed_ci[0]) if sealed_ci else None,
                sealed_high=finite(sealed_ci[1]) if sealed_ci else None,
                pgr=finite(run.pgr),
                pgr_low=finite(pgr_ci[0]),
                pgr_high=finite(pgr_ci[1]),
                weak_acc=finite(run.weak_acc),
                ceiling_acc=finite(run.ceiling_acc),
                seconds=finite(run.seconds),
                details=jsonable(
                    {
                        "seeds": [s.get("seed") for s in run.per_seed],
                        "per_seed": run.per_seed,
                        "ablation": run.ablation.evidence() if run.ablation else None,
                        "method_seconds": run.method_seconds,
                    }
                ),
                seeds=[int(x) for x in run.seeds],
                dev_predictions=None if vec is None else vec.astype(np.float32).tobytes(),
                released_dev=None
                if vec is None or ev is None
                else release_dev(session, ev, result.agent_id, vec, ladder_step),
                ceiling_structured_acc=finite(run.ceiling_structured_acc),
                pgr_structured=finite(run.pgr_structured),
                pgr_structured_low=finite(st_ci[0]),
                pgr_structured_high=finite(st_ci[1]),
            )
        )
    for flag in run.flags:
        session.add(flag_row(flag, result.agent_id, result.task, result.id))
    return result


def record_probing(session: Session, agent_id: int, task: str) -> int:
    """Run the probing detector on one agent's dev log for ``task``; store each kind of finding once
    per agent and task (a rerun adds nothing new). Returns how many flags were added."""
    blobs = session.scalars(
        select(DevSubmission.predictions)
        .where(DevSubmission.agent_id == agent_id, DevSubmission.task == task)
        .order_by(DevSubmission.id)
    )
    vectors = [np.frombuffer(b, dtype=np.float32) for b in blobs]
    seen = set(
        session.scalars(
            select(ReviewFlag.kind).where(
                ReviewFlag.agent_id == agent_id, ReviewFlag.task == task, ReviewFlag.result_id.is_(None)
            )
        )
    )
    added = 0
    for flag in probing_flags(vectors):
        if flag.kind not in seen:
            session.add(flag_row(flag, agent_id, task, None))
            seen.add(flag.kind)
            added += 1
    return added


def record_result_probing(session: Session, agent_id: int, task: str) -> int:
    """The probing detector over one agent's *verified* dev prediction vectors (in result order), as
    over its dev submissions: results that change one to three predictions at a time are how labels are
    read off exact verified scores. Each kind is stored once per agent and task; returns flags added."""
    blobs = session.scalars(
        select(VerifiedScore.dev_predictions)
        .join(Result, Result.id == VerifiedScore.result_id)
        .where(
            Result.agent_id == agent_id,
            VerifiedScore.task == task,
            VerifiedScore.dev_predictions.is_not(None),
        )
        .order_by(VerifiedScore.result_id)
    )
    vectors = [np.frombuffer(b, dtype=np.float32) for b in blobs if b is not None]
    if len({len(v) for v in vectors}) > 1:
        return 0
    seen = set(
        session.scalars(
            select(ReviewFlag.kind).where(
                ReviewFlag.agent_id == agent_id, ReviewFlag.task == task, ReviewFlag.result_id.is_(None)
            )
        )
    )
    added = 0
    for flag in probing_flags(vectors):
        kind = flag.kind.replace("probing/", "probing/results-", 1)
        if kind not in seen:
            renamed = Flag(kind, flag.severity, f"verified results: {flag.summary}", flag.evidence)
            session.add(flag_row(renamed, agent_id, task, None))
            seen.add(kind)
            added += 1
    return added


def _one(executor: Executor, job: VerifyJob) -> JobOutcome:
    try:
        out: JobOutcome = executor.map(run_job, [job])[0]
        return out
    except Exception as e:  # e.g. a Ray worker died: this result fails, the others go on
        return JobOutcome(job.result_id, server_failure("the executor failed on this result", e))


def verify_pending(
    sessions: sessionmaker[Session],
    data_dir: Path,
    executor: Executor,
    *,
    store: CodeStore | None = None,
    settings: VerifySettings | None = None,
    limit: int | None = None,
    ladder_step: float = 0.01,
) -> int:
    """Verify every queued result (at most ``limit``) and return how many were processed.

    ``store`` defaults to the code store in ``data_dir/code`` (the server's default). The method may
    read nothing of the data directory but its own work folder, nor the SQLite database."""
    data_dir = data_dir.resolve()
    # refuse before claiming anything: without the kernel confinement no result may be run (raises
    # SandboxUnavailable naming what is missing, unless the operator set AARLAB_INSECURE_SANDBOX=1)
    require_confinement("verification")
    store = store or CodeStore(str(data_dir / "code"))
    settings = settings or VerifySettings()
    bind = sessions.kw.get("bind")
    db_files = tuple(sqlite_files(bind if isinstance(bind, Engine) else None))
    ids = claim_queued(sessions, limit)
    if not ids:
        return 0
    jobs: list[VerifyJob] = []
    early: list[JobOutcome] = []
    agents: set[tuple[int, str]] = set()
    with session_scope(sessions) as s:
        for rid in ids:
            r = s.get(Result, rid)
            if r is None:
                continue
            agents.add((r.agent_id, r.task))
            try:
                data = store.get(r.snapshot_sha)
            except Exception as e:
                early.append(JobOutcome(rid, server_failure("the snapshot could not be read", e)))
                continue
            job_settings = settings
            if settings.draw_per_result:
                seeds = draw_seeds(read_secret(data_dir), r.task, rid, len(settings.seeds))
                job_settings = replace(settings, seeds=seeds)
            jobs.append(
                VerifyJob(
                    rid, r.task, str(data_dir), data, dict(r.config), dict(r.claimed), job_settings, db_files
                )
            )
    warm_up(data_dir, sorted({job.task for job in jobs}))
    if settings.draw_per_result and executor.name == "local" and ids:
        # while these jobs run, the seeds of the next batch of results (ids are handed out in order)
        upcoming = range(max(ids) + 1, max(ids) + 1 + len(ids))
        for task in sorted({job.task for job in jobs}):
            prefetch_seed_pool(data_dir, task, upcoming, len(settings.seeds))
    try:
        outcomes: list[JobOutcome] = executor.map(run_job, jobs) if jobs else []
    except Exception:  # one job broke the batch (not run_job itself, which never raises): go one by one
        outcomes = [_one(executor, job) for job in jobs]
    tasks: dict[str, EvalTask | None] = {}
    for outcome in early + outcomes:
        try:
            with session_scope(sessions) as s:
                res = s.get(Result, outcome.result_id)
                name = res.task if res is not None else ""
                if name not in tasks:
                    try:
                        tasks[name] = load_eval_task(data_dir, name)
                    except Exception:  # no dev labels: nothing is released (overseers still see it)
                        tasks[name] = None
                record_outcome(s, outcome, tasks[name], ladder_step)
        except Exception as e:  # storing one outcome failed: record why, go on with the others
            with session_scope(sessions) as s:
                failed = JobOutcome(outcome.result_id, server_failure("could not store the verification", e))
                record_outcome(s, failed)
    for agent_id, task in sorted(agents):
        with session_scope(sessions) as s:
            record_probing(s, agent_id, task)
            record_result_probing(s, agent_id, task)
    return len(ids)
