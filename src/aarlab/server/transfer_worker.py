"""Run queued transfer-gate requests for verified results, with the method's code in the sandbox.

An overseer queues a request (``POST /api/v1/results/{id}/transfer`` or ``aarlab transfer RESULT_ID``);
this job fetches the result's snapshot and runs the gate, whose runs of the method are verify's
(:class:`aarlab.verify.gate_runs.SandboxCollector`: one confined child per suite seed, labels only in
the trusted parent). A critical audit finding (a read of ground truth, code from the dataset executed)
blocks a *transfers* verdict and goes to the review queue; the verdict (with its registered settings and
per-suite report) is stored on the request row.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aarlab.api.archive import safe_extract
from aarlab.oversight.flags import Flag, audit_flags
from aarlab.sandbox import require_confinement
from aarlab.server.codestore import CodeStore
from aarlab.server.db import session_scope
from aarlab.server.flag_rows import flag_row, jsonable
from aarlab.server.models import Result, TransferVerdict, utcnow
from aarlab.server.worker import WORK, forbidden_for, sqlite_files
from aarlab.testbed.errors import AarlabError
from aarlab.transfer.gate import GateSettings, default_settings, run_gate
from aarlab.verify.gate_runs import SandboxCollector, snapshot_spec
from aarlab.verify.sandbox import Limits

#: Progress of one gate run: ``(suites done, suites in all, a note on what happens now)``.
SuiteProgress = Callable[[int, int, str], None]


def _timed(progress: SuiteProgress | None) -> SuiteProgress | None:
    """``progress`` with each finished suite's cost in seconds added to its note."""
    if progress is None:
        return None
    started = [time.perf_counter()]

    def report(done: int, total: int, note: str) -> None:
        if note.endswith("finished"):
            note = f"{note} in {time.perf_counter() - started[0]:.1f} s"
        started[0] = time.perf_counter()
        assert progress is not None
        progress(done, total, note)

    return report


def claim_transfers(sessions: sessionmaker[Session], limit: int | None = None) -> list[int]:
    """Mark queued transfer requests ``running`` and return their ids."""
    with session_scope(sessions) as s:
        q = select(TransferVerdict).where(TransferVerdict.status == "queued").order_by(TransferVerdict.id)
        if limit is not None:
            q = q.limit(limit)
        rows = list(s.scalars(q.with_for_update(skip_locked=True)))
        for t in rows:
            t.status = "running"
        return [t.id for t in rows]


def run_transfer(
    sessions: sessionmaker[Session],
    data_dir: Path,
    verdict_id: int,
    *,
    store: CodeStore,
    settings: GateSettings,
    limits: Limits | None = None,
    progress: SuiteProgress | None = None,
) -> TransferVerdict:
    """Run the gate for one claimed request and store the verdict (never raises for the method's own
    failures: they become a ``failed`` request with the reason). ``progress`` is told as each suite
    starts and ends."""
    with session_scope(sessions) as s:
        t = s.get(TransferVerdict, verdict_id)
        if t is None:
            raise AarlabError(f"no transfer request {verdict_id}")
        r = s.get(Result, t.result_id)
        if r is None:
            raise AarlabError(f"transfer request {verdict_id}: no result {t.result_id}")
        rid, sha, config = r.id, r.snapshot_sha, dict(r.config or {})
    work = data_dir / WORK / f"transfer-{verdict_id}"
    bind = sessions.kw.get("bind")
    db_files = sqlite_files(bind if isinstance(bind, Engine) else None)
    events: list[dict[str, Any]] = []
    flags: list[Flag] = []
    status, reason, report = "failed", "", {}
    verdict: str | None = None
    try:
        shutil.rmtree(work, ignore_errors=True)
        method_dir = work / "method"
        safe_extract(store.get(sha), method_dir)
        if not (method_dir / "method.py").is_file():
            raise AarlabError("the snapshot has no method.py at its root")
        collector = SandboxCollector(
            method_dir,
            work / "suites",
            forbidden_for(data_dir, work, db_files),
            limits or Limits(),
            events,
        )
        gate = run_gate(
            snapshot_spec(rid), config or None, settings, collect=collector, progress=_timed(progress)
        )
        report = gate.to_json()
        flags = audit_flags(events) + collector.failures
        report["audit_flags"] = [f.__dict__ for f in flags]
        status, verdict, reason = "done", gate.verdict, gate.reason
        if all(s.status == "error" for s in gate.suites):
            status, verdict = "failed", None
            reason = "every suite failed: " + "; ".join(f"{s.suite.name}: {s.note}" for s in gate.suites)
        critical = [f for f in flags if f.severity == "critical"]
        if critical:
            # evidence of reading ground truth or running dataset code outweighs any ΔPGR
            status, verdict = "done", "blocked"
            reason = (
                f"blocked: {len(critical)} critical audit finding(s) during the gate's runs "
                f"({', '.join(sorted({f.kind for f in critical}))}); see the review queue"
            )
    except Exception as e:  # the worker must go on with other requests
        reason = f"transfer worker error: {type(e).__name__}: {e}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if flags:
        with session_scope(sessions) as s:
            r = s.get(Result, rid)
            if r is not None:
                for f in flags:
                    s.add(
                        flag_row(
                            Flag(f"gate/{f.kind}", f.severity, f.summary, f.evidence), r.agent_id, r.task, rid
                        )
                    )
    with session_scope(sessions) as s:
        t = s.get(TransferVerdict, verdict_id)
        assert t is not None
        t.status, t.verdict, t.reason = status, verdict, reason
        t.settings = jsonable(settings.model_dump())
        t.report = jsonable(report)
        t.finished_at = utcnow()
        s.flush()
        s.expunge(t)
        return t


def transfer_pending(
    sessions: sessionmaker[Session],
    data_dir: Path,
    *,
    settings: GateSettings | None = None,
    limit: int | None = None,
    store: CodeStore | None = None,
    limits: Limits | None = None,
    progress: SuiteProgress | None = None,
) -> list[int]:
    """Run every queued transfer request (at most ``limit``); returns the request ids processed.
    ``progress`` is told as each suite of each request starts and ends."""
    data_dir = data_dir.resolve()
    require_confinement("the transfer gate")  # refuse before claiming (see verify_pending)
    store = store or CodeStore(str(data_dir / "code"))
    settings = settings or default_settings()
    ids = claim_transfers(sessions, limit)
    for vid in ids:
        run_transfer(
            sessions, data_dir, vid, store=store, settings=settings, limits=limits, progress=progress
        )
    return ids


def transfer_result(
    data_dir: Path,
    db_url: str | None,
    result_id: int,
    settings: GateSettings | None = None,
    progress: SuiteProgress | None = None,
) -> dict[str, Any]:
    """``aarlab transfer RESULT_ID``: queue the gate for a verified result and run it now (on this
    machine, the method in the sandbox). Returns the stored request as JSON (status, verdict, report)."""
    from aarlab.server.db import make_engine, migrate, session_factory
    from aarlab.server.settings import ServerSettings

    server = ServerSettings(data_dir=data_dir, db_url=db_url)
    engine = make_engine(server.database_url)
    try:
        migrate(engine)
        sessions = session_factory(engine)
        settings = settings or default_settings()
        with session_scope(sessions) as s:
            r = s.get(Result, result_id)
            if r is None:
                raise AarlabError(f"no result {result_id} in {server.database_url}")
            if r.status != "verified":
                raise AarlabError(
                    f"result {result_id} is {r.status!r}; the gate runs on verified results only "
                    "(run `aarlab verify --data-dir D --once` first)"
                )
            t = TransferVerdict(result_id=result_id, status="running", settings={}, report={})
            s.add(t)
            s.flush()
            vid = t.id
        store = CodeStore(server.code_url, server.storage_options)
        done = run_transfer(
            sessions, data_dir.resolve(), vid, store=store, settings=settings, progress=progress
        )
        return {
            "id": done.id,
            "result_id": done.result_id,
            "status": done.status,
            "verdict": done.verdict,
            "reason": done.reason,
            "report": done.report,
        }
    finally:
        engine.dispose()
