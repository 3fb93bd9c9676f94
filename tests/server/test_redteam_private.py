"""Red team: read a sealed figure through what the leaderboard says about a result's findings.

An agent chooses its claims. Verification flags a claim outside the verified interval
(``claim-vs-reproduction``: ``high`` above it, ``warn`` below), and the sealed-accuracy interval is a
sealed figure. If an agent's leaderboard rows carried the open-flag count or severity, each result
would answer "is my claim inside the sealed CI?", and a bisection over claims reads the sealed accuracy
to any precision (then the forced-item diff reads sealed labels). The group-structure disclosure is
computed on sealed labels too, and so is the ablation verdict whose critical flag kept a row off the
board (a method that tells ablations apart steers it): an agent's own row never vanishes. The
worker's job is replaced by one returning what the verifier returns for these claims (the real
``claim_flags``), so the test runs in seconds on both databases.
"""

from __future__ import annotations

import csv
import io

from test_redteam_storage import _Fake

from aarlab.api.archive import pack_folder
from aarlab.oversight.flags import Flag, claim_flags
from aarlab.server import worker
from aarlab.verify.runner import VerifiedRun, VerifySettings
from conftest import TASK

SEALED, CI = 0.6172839, (0.5432198, 0.6913579)
CLAIMS = (0.60, 0.99, 0.01)  # inside, above, below the sealed CI


def _run(claim: float, structure: bool, critical: bool = False) -> VerifiedRun:
    flags = claim_flags(claim, SEALED, CI, "sealed_acc")
    if critical:  # an ablation verdict, judged on sealed labels (a method that spots ablations steers it)
        flags.append(Flag("ablation/no-teacher-no-student", "critical", "survives both ablations", {}))
    if structure:  # what structure_flag reports when the sealed accuracy drops under a group shuffle
        flags.append(Flag("ablation/uses-group-structure", "info", "drop", {}))
    return VerifiedRun(
        "verified", "", 0.55, (0.5, 0.6), SEALED, CI, 0.51, 0.7, 0.55, (0.1, 0.9), flags=flags, seeds=(7,)
    )


def test_an_agent_learns_nothing_from_the_flags_its_claims_raise(
    app_client, make_agent, data_dir, monkeypatch
):
    monkeypatch.setattr(worker, "warm_up", lambda *a, **k: None)
    mallory, boss = make_agent("mallory"), make_agent("boss", "overseer")
    folder = data_dir.parent / "claims-method"
    folder.mkdir(exist_ok=True)
    (folder / "method.py").write_text("def run(ctx):\n    return [0.1] * len(ctx.test)\n")
    sha = mallory.put_snapshot(pack_folder(folder)).sha256
    runs = {}
    for k, claim in enumerate(CLAIMS * 2):
        rid = mallory.submit_result(TASK, sha, {"k": k}, {"sealed_acc": claim}).id
        runs[rid] = _run(claim, structure=k >= len(CLAIMS), critical=k == 0)
    state = app_client.app.state.aarlab
    worker.verify_pending(
        state.sessions,
        data_dir,
        _Fake(runs),  # type: ignore[arg-type]
        store=state.store,
        settings=VerifySettings(seeds=(7,), ablations=False, draw_per_result=False),
    )
    seen = {
        (r.open_flags, r.top_severity, r.uses_test_time_structure)
        for r in mallory.leaderboard(TASK)
        if r.result_id in runs
    }
    assert len(seen) == 1, seen  # every row reads the same whatever the sealed figures
    assert set(runs) <= {r.result_id for r in mallory.leaderboard(TASK)}  # none vanishes either
    token = mallory._http.headers["Authorization"].split()[1]
    ui = app_client.__class__(app_client.app)  # the dashboard's exports with the agent's session
    assert ui.get("/ui/login", params={"token": token}).status_code == 200
    exported = ui.get("/ui/leaderboard.json", params={"task": TASK}).json()["ranked"]
    table = csv.DictReader(io.StringIO(ui.get("/ui/leaderboard.csv", params={"task": TASK}).text))
    assert len({(r["open_flags"], r["top_severity"]) for r in exported}) == 1, exported
    assert len({(r["open_flags"], r["top_severity"]) for r in table}) == 1
    # the overseer sees the findings (the test has teeth: the rows do differ)
    full = {
        (r.open_flags, r.top_severity, r.uses_test_time_structure)
        for r in boss.leaderboard(TASK)
        if r.result_id in runs
    }
    assert len(full) >= 3, full
    assert min(runs) not in {r.result_id for r in boss.leaderboard(TASK)}  # pending review for overseers
