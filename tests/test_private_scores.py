"""Private scores: agents read no sealed figure, verified dev scores are released Ladder-style, results
are budgeted, verification seeds are drawn per result, and the probing detector watches verified
prediction vectors. The label-reading attack of the issue (force one item per result, diff the exact
verified scores: 12/12 labels, dev and sealed, from 7 results) is reproduced and must fail."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aarlab.api.client import Client, ServerError
from aarlab.server.app import create_app
from aarlab.server.datadir import init_task, load_eval_task
from aarlab.server.settings import ServerSettings
from aarlab.server.worker import verify_pending
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.tasks.registry import split_by_entity
from aarlab.verify.executors import get_executor
from aarlab.verify.runner import VerifySettings
from aarlab.verify.sandbox import Limits
from test_review import TASK, VANILLA, _client, _tar

SETTINGS = VerifySettings(seeds=(11,), ablations=False, limits=Limits(wall_s=300))

#: The attack: a constant prediction (every item "False") except one forced dev item and one forced
#: sealed item ("True"); the sealed items are the evaluation items that are not dev items. Items are
#: picked by their texts: verification bundles re-key every id, so texts are all an attacker can aim at.
FORCE_ONE = '''"""Red team: force one dev and one sealed item per result, diff the verified scores."""
from pydantic import BaseModel
class Config(BaseModel):
    dev_texts: list[str] = []
    dev_item: str | None = None
    sealed_rank: int | None = None
def run(ctx):
    texts = ["\\x1f".join(t) for t in ctx.test.texts]
    dev = set(ctx.config.dev_texts)
    sealed = sorted(t for t in texts if t not in dev)
    force = {ctx.config.dev_item} if ctx.config.dev_item else set()
    if ctx.config.sealed_rank is not None:
        force.add(sealed[ctx.config.sealed_rank])
    return [0.9 if t in force else 0.1 for t in texts]
'''


def _key(texts: tuple[str, ...] | list[str]) -> str:
    return "\x1f".join(texts)


@dataclass
class World:
    app: TestClient
    data_dir: Path
    mallory: Client
    alice: Client
    boss: Client
    base_id: int
    probes: list[tuple[int, str, int]]  # (result id, forced dev id, forced sealed rank)
    vanilla_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from aarlab.testbed.tasks.truth_cities import build_truth_cities

    records = build_truth_cities(n_cities=170, n_capitals=20)
    ref = tmp_path_factory.mktemp("ref") / TASK
    for name, part in zip(
        ("train_label", "train_unlabel", "test"), split_by_entity(records, (0.25, 0.4, 0.35), 0), strict=True
    ):
        write_jsonl(ref / f"{name}.jsonl", part)
    data = tmp_path_factory.mktemp("private-data")
    init_task(data, str(ref), name=TASK)
    tmp = tmp_path_factory.mktemp("private-db")
    settings = ServerSettings(
        data_dir=data, db_url=f"sqlite:///{tmp / 'server.db'}", storage_url=str(tmp / "c")
    )
    app = create_app(settings)
    with TestClient(app) as tc:
        mallory, alice, boss = _client(tc, "mallory"), _client(tc, "alice"), _client(tc, "boss", "overseer")
        dev_texts = [_key(it.texts) for it in mallory.dev_items(TASK).items]
        sha = mallory.put_snapshot(_tar({"method.py": FORCE_ONE})).sha256
        base = mallory.submit_result(TASK, sha, {"dev_texts": dev_texts}).id
        probes = []
        for k in range(6):  # 6 probes + the all-"False" base = 7 results for 12 labels
            cfg = {"dev_texts": dev_texts, "dev_item": dev_texts[k], "sealed_rank": k}
            probes.append((mallory.submit_result(TASK, sha, cfg).id, dev_texts[k], k))
        vanilla = alice.submit_result(TASK, alice.put_snapshot(_tar({"method.py": VANILLA})).sha256).id
        ex = get_executor("local", workers=2)
        try:
            verify_pending(
                app.state.aarlab.sessions, data, ex, store=app.state.aarlab.store, settings=SETTINGS
            )
        finally:
            ex.close()
        yield World(tc, data, mallory, alice, boss, base, probes, vanilla)
    app.state.aarlab.engine.dispose()


def _attack(w: World, rows: dict[int, tuple[float | None, float | None]]) -> int:
    """Labels the attacker determines correctly by diffing a probe's scores against the base's."""
    ev = load_eval_task(w.data_dir, TASK)
    dev_label = dict(zip((_key(it.texts) for it in ev.dev.items), ev.dev.labels.tolist(), strict=True))
    sealed_sorted = sorted(
        zip((_key(it.texts) for it in ev.sealed.items), ev.sealed.labels.tolist(), strict=True)
    )
    base_dev, base_sealed = rows.get(w.base_id, (None, None))
    got = 0
    for rid, dev_item, rank in w.probes:
        dev, sealed = rows.get(rid, (None, None))
        if dev is not None and base_dev is not None and dev != base_dev:
            got += (dev > base_dev) == dev_label[dev_item]
        if sealed is not None and base_sealed is not None and sealed != base_sealed:
            got += (sealed > base_sealed) == sealed_sorted[rank][1]
    return got


def test_force_one_item_attack_reads_no_labels(world: World) -> None:
    board = world.mallory.leaderboard(TASK)
    rows = {r.result_id: (r.dev_acc, r.sealed_acc) for r in board}
    mine = {r.id: (r.released_dev, None) for r in world.mallory.my_results()}
    assert _attack(world, rows) == 0 and _attack(world, mine) == 0
    # the same attack with what an overseer sees would read every label: the test has teeth
    full = {r.result_id: (r.dev_acc, r.sealed_acc) for r in world.boss.leaderboard(TASK)}
    assert _attack(world, full) >= 10


def test_agents_read_no_sealed_figure_anywhere(world: World) -> None:
    for client in (world.mallory, world.alice):
        for row in client.leaderboard(TASK):
            assert row.private
            for field in (
                "sealed_acc",
                "sealed_low",
                "sealed_high",
                "pgr",
                "pgr_low",
                "pgr_high",
                "weak_acc",
                "ceiling_acc",
                "dev_low",
                "dev_high",
                "pgr_structured",
                "ceiling_structured_acc",
                "pgr_rank",
                "verification_seeds",
            ):
                assert getattr(row, field) is None, field
            if row.dev_acc is not None:  # released dev scores are rounded to the Ladder's step
                assert abs(row.dev_acc * 100 - round(row.dev_acc * 100)) < 1e-9
    raw = world.alice._http.get("/api/v1/leaderboard", params={"task": TASK})
    # Every number an agent's leaderboard carries is an id, a count or a Ladder-rounded dev score: no
    # float off the 0.01 grid, whatever field it would hide in. Holds for any secret seed draw (the
    # sealed accuracies differ from run to run; some draws give only short fractions such as 0.55).
    off_grid = [x for x in _numbers(raw.json()) if abs(x * 100 - round(x * 100)) > 1e-9]
    assert off_grid == []
    sealed = [r.sealed_acc for r in world.boss.leaderboard(TASK) if r.sealed_acc is not None]
    assert sealed  # the overseer sees the sealed figures the agents must not
    exact = [x for x in sealed if abs(x * 100 - round(x * 100)) > 1e-9]  # not a coincidental 0.55
    assert not any(repr(x) in raw.text for x in exact)
    ui = _ui(world, world.alice)
    page = ui.get("/ui/leaderboard", params={"task": TASK}).text
    assert "leaderboard" in page and not any(f"{x:.3f}" in page for x in exact)
    assert "sealed figures are private" in ui.get("/ui/run", params={"task": TASK}).text


def _numbers(doc: object) -> list[float]:
    """Every non-integer number in a decoded JSON document."""
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in _numbers(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in _numbers(v)]
    return [doc] if isinstance(doc, float) and not doc.is_integer() else []


def _ui(world: World, client: Client) -> TestClient:
    """A browser session of ``client``'s token on the dashboard."""
    ui = TestClient(world.app.app)
    token = client._http.headers["Authorization"].split()[1]
    assert ui.get("/ui/login", params={"token": token}).status_code == 200
    return ui


def test_only_improvements_are_released_and_rounded(world: World) -> None:
    mine = {r.id: r.released_dev for r in world.mallory.my_results()}
    assert mine[world.base_id] is not None  # the first verified result is released
    assert all(mine[rid] is None for rid, _, _ in world.probes)  # one flipped item never beats it


def test_overseer_sees_everything_and_seeds_are_drawn_per_result(world: World) -> None:
    rows = world.boss.leaderboard(TASK)
    assert rows and all(not r.private and r.sealed_acc is not None for r in rows)
    seeds = [tuple(r.verification_seeds or ()) for r in rows]
    assert all(len(s) == 1 for s in seeds) and len(set(seeds)) == len(seeds)  # fresh per result
    assert all(s != (11,) for s in seeds)


def test_probing_detector_watches_verified_vectors(world: World) -> None:
    flags = [f for f in world.boss.flags() if f.agent == "mallory"]
    kinds = {f.kind for f in flags}
    assert "probing/results-single-item-flips" in kinds, kinds
    assert not [f for f in world.boss.flags() if f.agent == "alice" and f.kind.startswith("probing/")]


def test_final_reveal_is_an_overseer_action(world: World) -> None:
    with pytest.raises(ServerError) as e:
        world.alice.reveal(TASK)
    assert e.value.status == 403
    with pytest.raises(ServerError) as e:
        world.boss.reveal("no-such-task")
    assert e.value.status == 404
    out = world.boss.reveal(TASK)
    assert out.task == TASK and out.revealed_by == "boss"
    rows = world.alice.leaderboard(TASK)
    assert rows and all(not r.private and r.sealed_acc is not None for r in rows)
    assert all(r.verification_seeds is None for r in rows)  # seeds stay with overseers


def test_result_budget_and_rate_limit(world: World, tmp_path: Path) -> None:
    state = world.app.app.state.aarlab  # type: ignore[attr-defined]
    old = (state.settings.result_budget, state.settings.result_rate_per_minute)
    spammer = _client(world.app, "spammer")
    sha = spammer.put_snapshot(_tar({"method.py": VANILLA})).sha256
    try:
        state.settings.result_rate_per_minute = 2
        spammer.submit_result(TASK, sha)
        spammer.submit_result(TASK, sha)
        with pytest.raises(ServerError) as e:
            spammer.submit_result(TASK, sha)
        assert e.value.status == 429 and "per minute" in e.value.message
        state.settings.result_rate_per_minute, state.settings.result_budget = 100, 2
        with pytest.raises(ServerError) as e:
            spammer.submit_result(TASK, sha)
        assert e.value.status == 403 and "result budget" in e.value.message
    finally:
        state.settings.result_budget, state.settings.result_rate_per_minute = old


def test_structure_use_is_labelled_and_ranking_uses_the_structured_pgr(world: World) -> None:
    """Verification's group-shuffle ablation discloses structure use as a flag named
    ``ablation/uses-group-structure``; the leaderboard shows it as information to everyone."""
    from aarlab.server.db import session_scope
    from aarlab.server.models import Result, ReviewFlag, VerifiedScore

    sessions = world.app.app.state.aarlab.sessions  # type: ignore[attr-defined]
    with session_scope(sessions) as s:
        res = s.get(Result, world.vanilla_id)
        assert res is not None
        s.add(
            ReviewFlag(
                result_id=world.vanilla_id,
                agent_id=res.agent_id,
                task=TASK,
                kind="ablation/uses-group-structure",
                severity="info",
                summary="shuffling group ids changes the predictions",
                evidence={},
                status="open",
            )
        )
    for client in (world.alice, world.boss):
        rows = {r.result_id: r for r in client.leaderboard(TASK)}
        assert rows[world.vanilla_id].uses_test_time_structure
        assert not any(r.uses_test_time_structure for k, r in rows.items() if k != world.vanilla_id)
    with session_scope(sessions) as s:
        vs = {v.result_id: v for v in s.query(VerifiedScore)}
    rank = [r.pgr_rank for r in world.boss.leaderboard(TASK) if r.pgr_rank is not None]
    assert rank == sorted(rank, reverse=True)
    for r in world.boss.leaderboard(TASK):
        v = vs[r.result_id]
        assert r.pgr_rank == (v.pgr_structured if v.ceiling_structured_acc is not None else v.pgr)


def test_failure_reasons_do_not_show_an_agent_its_verification_seeds() -> None:
    from datetime import UTC, datetime

    from aarlab.server.models import Result
    from aarlab.server.queries.results import result_out as _out

    r = Result(
        id=1,
        agent_id=1,
        task=TASK,
        snapshot_sha="a" * 64,
        config={},
        claimed={},
        status="failed",
        created_at=datetime.now(UTC),
        reason="seed 123456: bad predictions: shape (3,)",
    )
    assert "123456" not in (_out(r, private=True).reason or "")
    assert "123456" in (_out(r).reason or "")
