"""Run queued transfer-gate requests for verified results, with the method's code in the sandbox.

An overseer queues a request (``POST /api/v1/results/{id}/transfer`` or ``aarlab transfer RESULT_ID``);
this worker fetches the result's snapshot, and for each pre-registered suite prepares the task and the
vanilla baseline in the trusted parent and runs the method once per seed, each in its own confined child
(:func:`aarlab.verify.execute.execute_runs`, the same layer as verification): bundles re-keyed and
shuffled as the server's tasks are, manifests that never say what the run is for. The labels never
leave the parent. A critical audit finding (a read of ground truth, code from the dataset executed)
blocks a *transfers* verdict and goes to the review queue; the verdict (with its registered settings and
per-suite report) is stored on the request row.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aarlab.api.archive import safe_extract
from aarlab.oversight.flags import Flag, audit_flags, failure_flag
from aarlab.sandbox import require_confinement
from aarlab.server.codestore import CodeStore
from aarlab.server.db import session_scope
from aarlab.server.models import Result, TransferVerdict, utcnow
from aarlab.server.worker import WORK, flag_row, forbidden_for, jsonable, sqlite_files
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.methods import MethodSpec
from aarlab.testbed.pipeline import (
    Prepared,
    SeedBaseline,
    item_keys,
    prepare,
    run_method,
    seed_baseline,
)
from aarlab.testbed.schema import Record
from aarlab.testbed.tasks import get_spec
from aarlab.testbed.tasks.registry import ground_truth_locations
from aarlab.transfer.gate import GateSettings, Suite, default_settings, run_gate, suite_task
from aarlab.transfer.stats import PairedSeed
from aarlab.verify.execute import MethodRun, execute_runs
from aarlab.verify.runner import PARENT_LOCK as _PARENT_LOCK
from aarlab.verify.sandbox import Limits


class SnapshotConfig(BaseModel):
    """The config of a snapshot method, passed through unchanged: the method validates it in the
    sandbox (importing its Config class here would run untrusted code in the trusted parent)."""

    model_config = ConfigDict(extra="allow")


def _runs_in_sandbox(*_: Any) -> Any:
    raise AarlabError("a snapshot method runs only in the sandbox (through the transfer collector)")


def snapshot_spec(result_id: int) -> MethodSpec:
    """A stand-in spec naming the result; its code is executed only by the sandboxed collector."""
    return MethodSpec(
        name=f"result-{result_id}",
        run=_runs_in_sandbox,
        config=SnapshotConfig,
        description="a verified result's snapshot, run in the sandbox",
    )


#: Progress of one gate run: ``(suites done, suites in all, a note on what happens now)``.
SuiteProgress = Callable[[int, int, str], None]


@dataclass
class SandboxCollector:
    """Collects a suite's paired predictions: baseline in the parent, the method in one child per seed."""

    method_dir: Path
    workdir: Path
    forbidden: Sequence[str]
    limits: Limits
    events: list[dict[str, Any]]
    failures: list[Flag] = field(default_factory=list)

    def __call__(
        self, suite: Suite, spec: MethodSpec, config: dict[str, Any] | None, baseline: MethodSpec
    ) -> list[PairedSeed]:
        with _PARENT_LOCK:
            prep = prepare(suite_task(suite), suite.weak, suite.strong, show_progress=False)
        records = _records_by_id(prep)
        manifest = {
            "task": _public_name(suite.task),
            "schema": prep.task.schema,
            "weak": suite.weak,
            "strong": suite.strong,
            "prior_hypotheses": list(_prior(suite.task)),
        }
        bases: list[SeedBaseline] = []
        base_preds: list[np.ndarray] = []
        runs: list[MethodRun] = []
        texts: set[str] = set()
        for seed in suite.seeds:
            with _PARENT_LOCK:
                base = seed_baseline(prep, seed)
                base_preds.append(run_method(prep, base, baseline, None, seed)[0])
                strong = prep.strong_model(seed)
                unl, test = base.splits.train_unlabel.inputs, base.splits.test.inputs
                features = np.vstack([strong.features(unl), strong.features(test)])
                prior = np.concatenate([strong.prior(unl), strong.prior(test)])
            bases.append(base)
            texts.update(t for it in base.splits.test.items for t in it.texts)
            runs.append(
                MethodRun(
                    f"seed-{seed}",
                    seed,
                    manifest,
                    [records[i] for i in unl.ids],
                    base.weak_unlabel,
                    [records[i] for i in test.ids],
                    features,
                    prior,
                )
            )
        hidden = [*self.forbidden, *map(str, ground_truth_locations(*_task_dirs(suite.task)))]
        results = execute_runs(
            runs,
            self.method_dir,
            config,
            self.workdir / secrets.token_hex(6),
            limits=self.limits,
            hidden=hidden,
            dataset_texts=sorted(texts),
        )
        for res in results.values():
            self.events.extend(res.events)
        paired = []
        for seed, base, bpred in zip(suite.seeds, bases, base_preds, strict=True):
            res = results[f"seed-{seed}"]
            if res.predictions is None:
                self.failures.append(
                    failure_flag(f"gate:{suite.name}", seed, res.status, res.reason, res.detail)
                )
                raise AarlabError(f"seed {seed}: {res.reason}")
            paired.append(
                PairedSeed(
                    labels=base.splits.test.labels,
                    weak=base.weak_test,
                    ceiling=base.ceiling_test,
                    baseline=bpred,
                    method=res.predictions,
                    ids=item_keys(base.splits.test.items),
                )
            )
        return paired


def _public_name(task: str) -> str:
    """A suite's task as a bundle names it: never a host path."""
    return Path(task).name if Path(task).is_dir() else task


def _records_by_id(prep: Prepared) -> dict[str, Record]:
    out = {r.id: r for r in prep.task.records if r.id}
    if len(out) != len(prep.task.records):
        raise AarlabError(f"task {prep.task.name!r}: every record needs an id to be used as a transfer suite")
    return out


def _prior(task: str) -> tuple[str, str]:
    try:
        return get_spec(task).prior_hypotheses
    except AarlabError:
        return ("This is correct.", "This is incorrect.")


def _task_dirs(task: str) -> list[Path]:
    """A suite given as a labelled directory must be hidden too (built-in tasks already are)."""
    return [Path(task).resolve()] if Path(task).is_dir() else []


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
        gate = run_gate(snapshot_spec(rid), config or None, settings, collect=collector, progress=progress)
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
