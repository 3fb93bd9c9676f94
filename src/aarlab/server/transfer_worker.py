"""Run queued transfer-gate requests for verified results, with the method's code in the sandbox.

An overseer queues a request (``POST /api/v1/results/{id}/transfer`` or ``aarlab transfer RESULT_ID``);
this worker fetches the result's snapshot, and for each pre-registered suite prepares the task and the
vanilla baseline in the trusted parent, writes one label-free bundle per seed, and runs the method on all
of a suite's seeds in *one* confined child (the same sandbox, limits and audit hooks as verification).
The labels never leave the parent; the verdict (with its registered settings and per-suite report) is
stored on the request row.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from aarlab.config import get_settings
from aarlab.oversight.flags import audit_flags
from aarlab.server.codestore import CodeStore, safe_extract
from aarlab.server.db import session_scope
from aarlab.server.models import Result, TransferVerdict, utcnow
from aarlab.server.worker import WORK, forbidden_for, jsonable, sqlite_files
from aarlab.testbed.bundle import BUNDLE_FORMAT, DEV, MANIFEST, UNLABELED, WEAK
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.loader import write_jsonl
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
from aarlab.transfer.gate import GateSettings, Suite, default_settings, run_gate, suite_task
from aarlab.transfer.stats import PairedSeed
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.runner import _PARENT_LOCK, _module_dir
from aarlab.verify.sandbox import Limits, run_sandboxed


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


@dataclass
class SandboxCollector:
    """Collects a suite's paired predictions: baseline in the parent, the method in one child."""

    method_dir: Path
    workdir: Path
    forbidden: Sequence[str]
    limits: Limits
    events: list[dict[str, Any]]

    def __call__(
        self, suite: Suite, spec: MethodSpec, config: dict[str, Any] | None, baseline: MethodSpec
    ) -> list[PairedSeed]:
        with _PARENT_LOCK:
            prep = prepare(suite_task(suite), suite.weak, suite.strong, show_progress=False)
        records = _records_by_id(prep)
        home = get_settings().home
        sdir = self.workdir / _safe(suite.name)
        shutil.rmtree(sdir, ignore_errors=True)
        bases: list[SeedBaseline] = []
        base_preds: list[np.ndarray] = []
        runs = []
        texts: set[str] = set()
        for seed in suite.seeds:
            with _PARENT_LOCK:
                base = seed_baseline(prep, seed)
                base_preds.append(run_method(prep, base, baseline, None, seed)[0])
            bases.append(base)
            bdir = sdir / f"bundle-{seed}"
            _write_bundle(bdir, suite, prep, base, records)
            texts.update(t for it in base.splits.test.items for t in it.texts)
            runs.append(
                {"bundle": str(bdir), "method": str(self.method_dir), "config": config, "seed": seed}
            )
        readable = [str(home / "features"), str(home / "models"), str(self.method_dir)]
        policy = AuditPolicy(
            sandbox=str(sdir),
            read_roots=default_read_roots(readable),
            forbidden_roots=[*self.forbidden, *_ground_truth_dirs(suite.task), str(home / "data")],
            dataset_texts=sorted(texts)[:5000],
        )
        out = run_sandboxed(
            "aarlab.verify.jobs:method_jobs",
            {"runs": runs},
            workdir=sdir / "run",
            policy=policy,
            aarlab_home=str(home),
            limits=self.limits,
        )
        self.events.extend(out.events)
        if out.status != "ok":
            raise AarlabError(f"the method's sandbox run {out.status}: {out.reason}")
        paired = []
        for seed, base, bpred, res in zip(suite.seeds, bases, base_preds, out.result, strict=True):
            if not res["ok"]:
                raise AarlabError(f"seed {seed}: {res['error']}")
            ids = base.splits.test.inputs.ids
            missing = [i for i in ids if i not in res["predictions"]]
            if missing:
                raise AarlabError(f"seed {seed}: no prediction for {len(missing)} test items")
            pred = np.array([res["predictions"][i] for i in ids], dtype=float)
            paired.append(
                PairedSeed(
                    labels=base.splits.test.labels,
                    weak=base.weak_test,
                    ceiling=base.ceiling_test,
                    baseline=bpred,
                    method=pred,
                    ids=item_keys(base.splits.test.items),
                )
            )
        return paired


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


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


def _ground_truth_dirs(task: str) -> list[str]:
    """Where the suite's labels live: a reference-format directory, or a built-in task's packages."""
    if Path(task).is_dir():
        return [str(Path(task).resolve())]
    try:
        modules = get_spec(task).source_modules
    except AarlabError:
        return []
    return [d for d in (_module_dir(m) for m in modules) if d]


def _write_bundle(
    path: Path, suite: Suite, prep: Prepared, base: SeedBaseline, records: dict[str, Record]
) -> None:
    """A label-free bundle for one seed (labels are dropped by ``write_jsonl(with_labels=False)``)."""
    path.mkdir(parents=True, exist_ok=True)
    unl = base.splits.train_unlabel
    write_jsonl(path / UNLABELED, [records[i] for i in unl.inputs.ids], with_labels=False)
    write_jsonl(path / DEV, [records[i] for i in base.splits.test.inputs.ids], with_labels=False)
    weak = {i: float(p) for i, p in zip(unl.inputs.ids, base.weak_unlabel, strict=True)}
    (path / WEAK).write_text(json.dumps(weak))
    manifest = {
        "format": BUNDLE_FORMAT,
        "task": suite.task,
        "schema": prep.task.schema,
        "weak": suite.weak,
        "strong": suite.strong,
        "prior_hypotheses": list(_prior(suite.task)),
        "purpose": "transfer",
    }
    (path / MANIFEST).write_text(json.dumps(manifest))


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
) -> TransferVerdict:
    """Run the gate for one claimed request and store the verdict (never raises for the method's own
    failures: they become a ``failed`` request with the reason)."""
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
    status, verdict, reason, report = "failed", None, "", {}
    try:
        shutil.rmtree(work, ignore_errors=True)
        method_dir = work / "method"
        safe_extract(store.get(sha), method_dir)
        if not (method_dir / "method.py").is_file():
            raise AarlabError("the snapshot has no method.py at its root")
        collector = SandboxCollector(
            method_dir, work / "suites", forbidden_for(data_dir, work, db_files), limits or Limits(), events
        )
        gate = run_gate(snapshot_spec(rid), config or None, settings, collect=collector)
        report = gate.to_json()
        report["audit_flags"] = [f.__dict__ for f in audit_flags(events)]
        status, verdict, reason = "done", gate.verdict, gate.reason
        if all(s.status == "error" for s in gate.suites):
            status, verdict = "failed", None
            reason = "every suite failed: " + "; ".join(f"{s.suite.name}: {s.note}" for s in gate.suites)
    except Exception as e:  # the worker must go on with other requests
        reason = f"transfer worker error: {type(e).__name__}: {e}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
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
) -> list[int]:
    """Run every queued transfer request (at most ``limit``); returns the request ids processed."""
    data_dir = data_dir.resolve()
    store = store or CodeStore(str(data_dir / "code"))
    settings = settings or default_settings()
    ids = claim_transfers(sessions, limit)
    for vid in ids:
        run_transfer(sessions, data_dir, vid, store=store, settings=settings, limits=limits)
    return ids


def transfer_result(
    data_dir: Path, db_url: str | None, result_id: int, settings: GateSettings | None = None
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
        done = run_transfer(sessions, data_dir.resolve(), vid, store=store, settings=settings)
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
