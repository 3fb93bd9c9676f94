"""Red team: a verified run whose findings the database refuses must not put the database's error text
(with the sealed figures of the run's other findings) into the reason an agent reads.

The attack: submitted code writes forged audit lines on its result pipe (fd 3; ``verify/sandbox.py``
keeps every ``{"audit": {...}}`` line as evidence). An event name longer than the flags table's ``kind``
column, or one holding a NUL, makes PostgreSQL refuse the whole flush; the worker then stored
``could not store the verification: <DB error>``, and the DB error quotes the INSERT's parameters:
the claim-vs-reproduction summary with the verified sealed CI. The worker's job function is replaced
by one that returns what the real verifier returns for such a child (the real ``audit_flags`` over the
forged events, the real ``claim_flags``), so the test runs in a second on both databases.
"""

from __future__ import annotations

from typing import Any

from aarlab.api.archive import pack_folder
from aarlab.oversight.flags import audit_flags, claim_flags
from aarlab.server import worker
from aarlab.server.db import session_scope
from aarlab.server.models import Result, ReviewFlag
from aarlab.verify.runner import VerifiedRun, VerifySettings
from conftest import TASK

SEALED = 0.6172839
CI = (0.5432198, 0.6913579)
#: sorted by name, the NUL one comes first: its refusal quoted the claim flag within the 2,000 kept chars
FORGED = [{"event": "\x00"}, {"event": "x" * 300, "path": "a\x00b"}, {"event": "network"}]


class _Fake:
    name = "fake"

    def __init__(self, runs: dict[int, VerifiedRun]) -> None:
        self.runs = runs

    def map(self, fn: Any, jobs: list[Any]) -> list[Any]:
        return [worker.JobOutcome(j.result_id, self.runs[j.result_id]) for j in jobs]

    def close(self) -> None:
        pass


def _run() -> VerifiedRun:
    flags = audit_flags(FORGED) + claim_flags(0.99, SEALED, CI, "sealed_acc")
    return VerifiedRun(
        "verified",
        "",
        dev_acc=0.55,
        dev_ci=(0.5, 0.6),
        sealed_acc=SEALED,
        sealed_ci=CI,
        weak_acc=0.51,
        ceiling_acc=0.7,
        pgr=0.55,
        pgr_ci=(0.1, 0.9),
        flags=flags,
        seeds=(12345,),
    )


def test_forged_audit_events_cannot_make_the_db_error_an_agents_reason(
    app_client, make_agent, data_dir, monkeypatch
):
    monkeypatch.setattr(worker, "warm_up", lambda *a, **k: None)  # no encoder needed: the run is given
    mallory = make_agent("mallory")
    folder = data_dir.parent / "m-method"
    folder.mkdir(exist_ok=True)
    (folder / "method.py").write_text("def run(ctx):\n    return [0.5] * len(ctx.test)\n")
    snap = mallory.put_snapshot(pack_folder(folder)).sha256
    rid = mallory.submit_result(TASK, snap, {}, {"sealed_acc": 0.99}).id
    state = app_client.app.state.aarlab
    n = worker.verify_pending(
        state.sessions,
        data_dir,
        _Fake({rid: _run()}),  # type: ignore[arg-type]
        store=state.store,
        settings=VerifySettings(seeds=(12345,), ablations=False, draw_per_result=False),
    )
    assert n == 1
    mine = {r.id: r for r in mallory.my_results()}[rid]
    text = f"{mine.status} {mine.reason} {mine.released_dev}"
    for secret in (SEALED, *CI, 12345):
        for shown in (f"{secret}", f"{secret:.3f}", f"{secret:.2f}"):
            if shown not in ("0.55", "0.54", "0.69", "0.62"):  # the Ladder releases dev at 0.01
                assert shown not in text, (shown, text)
    assert "INSERT" not in text and "parameters" not in text, text
    with session_scope(state.sessions) as s:
        res = s.get(Result, rid)
        assert res is not None
        kinds = [f.kind for f in s.query(ReviewFlag).filter(ReviewFlag.result_id == rid)]
    # the run is kept: verified, with its findings (forged names clipped and cleaned), not lost
    assert res.status == "verified", res.reason
    assert "claim-vs-reproduction" in kinds and any(k.startswith("audit/") for k in kinds), kinds
    assert all(len(k) <= 100 and "\x00" not in k for k in kinds), kinds


def test_a_storage_failure_gives_the_agent_a_fixed_reason(app_client, make_agent, data_dir, monkeypatch):
    """Whatever makes storing fail, its text (which can quote any figure) goes to overseers only."""
    monkeypatch.setattr(worker, "warm_up", lambda *a, **k: None)
    real = worker.record_outcome

    def refuse(session, outcome, *args: Any, **kw: Any) -> Result:
        if outcome.run.status == "verified":
            raise RuntimeError(f"[parameters: sealed_acc={SEALED!r}, seeds=[12345]]")
        return real(session, outcome, *args, **kw)

    monkeypatch.setattr(worker, "record_outcome", refuse)
    mallory = make_agent("mallory2")
    folder = data_dir.parent / "m-method2"
    folder.mkdir(exist_ok=True)
    (folder / "method.py").write_text("def run(ctx):\n    return [0.5] * len(ctx.test)\n")
    rid = mallory.submit_result(TASK, mallory.put_snapshot(pack_folder(folder)).sha256).id
    state = app_client.app.state.aarlab
    worker.verify_pending(
        state.sessions,
        data_dir,
        _Fake({rid: _run()}),  # type: ignore[arg-type]
        store=state.store,
        settings=VerifySettings(seeds=(12345,), ablations=False, draw_per_result=False),
    )
    mine = {r.id: r for r in mallory.my_results()}[rid]
    assert mine.status == "failed" and mine.reason
    assert str(SEALED) not in mine.reason and "12345" not in mine.reason and "parameters" not in mine.reason
    with session_scope(state.sessions) as s:
        ev = [f.evidence for f in s.query(ReviewFlag).filter(ReviewFlag.kind == "verify/server-error")]
    assert any(str(SEALED) in str(e) for e in ev)  # the overseer keeps the detail
