"""The orchestrator end to end: real agent processes against a real (in-process, uvicorn) server.

One module-scoped world runs five offline search agents in parallel on the tiny truth-cities task:
three ordinary ones (one of them crashes once after its first round and is restarted), one with a
two-submission cap, one with a few-second wall budget. The verification worker runs while they work.
Cheaper checks (a doomed agent, the CLI against a running server, Ray, errors) reuse the world's server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aarlab.agents.directions import get_direction
from aarlab.agents.orchestrator import (
    AgentJob,
    AgentPlan,
    AgentState,
    AttemptOutcome,
    Orchestrator,
    ResearchBudget,
    agent_command,
    agent_env,
    assign_directions,
    load_directions,
)
from aarlab.agents.orchestrator import supervision as orch
from aarlab.agents.search import VANILLA_CONFIG, SearchResearcher
from aarlab.api.client import Client
from aarlab.cli import app
from aarlab.lab.research import ResearchConfig, ResearchRun, run_research
from aarlab.lab.server import LocalServer
from aarlab.server.auth import add_agent
from aarlab.server.datadir import init_task
from aarlab.server.db import session_scope
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.tasks.registry import split_by_entity

TASK = "tiny-cities"
runner = CliRunner()


@dataclass
class World:
    run: ResearchRun
    server: LocalServer
    ref: Path
    data: Path
    run_dir: Path
    launched: list[tuple[AgentJob, dict[str, str], list[str]]]
    vanilla_dev: float

    def state(self, name: str) -> AgentState:
        return next(a for a in self.run.agents if a.name == name)

    def overseer(self) -> Client:
        return Client(self.server.url, self.server.overseer_token)


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aarlab.testbed.tasks.truth_cities import build_truth_cities

    ref = tmp_path_factory.mktemp("ref") / TASK
    parts = split_by_entity(build_truth_cities(n_cities=170, n_capitals=20), (0.25, 0.4, 0.35), 0)
    for name, part in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
        write_jsonl(ref / f"{name}.jsonl", part)
    return ref


@pytest.fixture(scope="module")
def world(tiny_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("orch-data")
    (data / "secret").write_text("ab" * 32)  # a fixed dev/sealed partition (as in the search test)
    (data / "secret").chmod(0o600)
    init_task(data, str(tiny_ref), name=TASK)
    run_dir = tmp_path_factory.mktemp("orch-run")
    launched: list[tuple[AgentJob, dict[str, str], list[str]]] = []

    class Recording(orch.LocalAttempt):
        def __init__(self, job: AgentJob, env: dict[str, str], log: Path) -> None:
            launched.append((job, dict(env), agent_command()))
            super().__init__(job, env, log)

    small = ResearchBudget(hours=0.05, rounds=1, proposals_per_round=5, submissions_per_round=4)
    cfg = ResearchConfig(
        agents=3,
        task=str(tiny_ref),
        directions=[get_direction(n) for n in ("noisy-channel-em", "distillation", "data-selection")],
        budget=small,
        data_dir=data,
        seed=1,
        verify_seeds=1,
        crash_attempts={"search-distillation": 1},
        extra_plans=[
            AgentPlan(
                "capped",
                get_direction("simplicity-bias"),
                "search",
                7,
                ResearchBudget(
                    hours=0.05, max_submissions=2, proposals_per_round=20, submissions_per_round=6
                ),
            ),
            AgentPlan(
                "timed",
                get_direction("reweighting"),
                "search",
                9,
                ResearchBudget(hours=3 / 3600, proposals_per_round=100, submissions_per_round=100),
            ),
        ],
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orch, "LocalAttempt", Recording)
        run, server = run_research(cfg, run_dir=run_dir, keep_server=True)
    assert server is not None
    try:
        # the reference: a fresh agent submits the vanilla-like config's dev predictions once
        with session_scope(server.state.sessions) as s:
            token = add_agent(s, "vanilla-ref", "agent")
        with Client(server.url, token) as ref_client:
            preds, _ = SearchResearcher(ref_client, run_dir / "bundle", "evolutionary", 0).evaluate(
                VANILLA_CONFIG
            )
            vanilla = ref_client.submit_dev(TASK, preds).reported_score
        yield World(run, server, tiny_ref, data, run_dir, launched, vanilla)
    finally:
        server.stop()


def test_agents_post_submit_get_verified_and_beat_vanilla(world: World) -> None:
    ordinary = ["search-noisy-channel-em", "search-distillation", "search-data-selection"]
    assert [a.name for a in world.run.agents] == [*ordinary, "capped", "timed"]
    assert len({a.direction for a in world.run.agents}) == 5  # distinct directions
    board = world.run.leaderboard
    n_results = sum(len(a.results) for a in world.run.agents)
    assert n_results >= 5 and world.run.verified == n_results and len(board) == n_results
    with world.overseer() as c:
        posts = c.posts(limit=50).items
    for name in ordinary:
        st = world.state(name)
        assert st.status == "finished" and st.stop_reason == "1 search round(s) done", st
        assert st.submissions >= 1 and len(st.results) == 1
        assert {p.kind for p in posts if p.author == name} == {"insight", "result"}
        assert any(r["agent"] == name and r["dev_acc"] is not None for r in board)
        assert st.verified_dev is not None
    best = max(world.state(n).best_dev or 0.0 for n in ordinary)
    assert best > world.vanilla_dev, (best, world.vanilla_dev)


def test_a_crashed_agent_is_restarted_and_resumes(world: World) -> None:
    st = world.state("search-distillation")
    assert st.restarts == 1 and st.status == "finished"
    assert "exit code 17" in st.note
    # the restart saw the round already done on the server: no second result, no extra submissions
    assert len(st.results) == 1
    attempts = [job.attempt for job, _, _ in world.launched if job.name == "search-distillation"]
    assert attempts == [0, 1]


def test_budgets_stop_agents_cleanly(world: World) -> None:
    capped = world.state("capped")
    assert capped.status == "stopped" and capped.stop_reason == "submission budget used (2)"
    with Client(world.server.url, _token(world, "capped")) as c:
        assert len(c.my_dev_submissions(TASK)) == 2  # none past the cap
    assert len(capped.results) == 1  # the best so far is still submitted as a result
    timed = world.state("timed")
    assert timed.status == "stopped" and timed.stop_reason == "wall budget used (3 s)", timed
    assert timed.results  # each round it finished ended in a result
    assert timed.seconds < 3 + orch.GRACE_S
    job = next(j for j, _, _ in world.launched if j.name == "timed")
    assert job.max_seconds == pytest.approx(3.0)


def _token(world: World, name: str) -> str:
    return next(j.token for j, _, _ in world.launched if j.name == name)


def test_usage_is_recorded_on_the_server(world: World) -> None:
    with world.overseer() as c:
        rows = {a.name: a for a in c.agents()}
    for st in world.run.agents:
        u = rows[st.name]
        assert (u.status, u.direction, u.backend) == (st.status, st.direction, "search")
        assert u.submissions == st.submissions and u.results == len(st.results) and u.restarts == st.restarts
        assert u.hours > 0 and u.tokens_in == 0 and u.dollars == 0.0
    # an agent can read usage but cannot write it
    with Client(world.server.url, _token(world, "capped")) as c:
        assert c.agents()
        with pytest.raises(Exception, match="403"):
            c.put_usage("capped", submissions=0)


def test_agents_never_get_the_overseer_token_or_the_data_dir(world: World) -> None:
    secrets = [world.server.overseer_token, str(world.data), str(world.data.resolve())]
    assert world.launched
    for job, env, argv in world.launched:
        blob = json.dumps(env) + " ".join(argv) + job.to_json()
        assert not any(s in blob for s in secrets)
        assert job.token != world.server.overseer_token
        assert Path(job.sandbox).is_relative_to(world.run_dir / "agents" / job.name)
        assert job.hidden == []  # search agents run no model-written commands: no server paths at all
        assert env["AARLAB_HOME"] == job.home and env["OMP_NUM_THREADS"]
    # and the scrubbing itself: by name and by value
    base = {"AARLAB_TOKEN": "x", "AARLAB_SERVER_DATA_DIR": "/d", "OTHER": "prefix-SECRET", "KEEP": "1"}
    env = agent_env("/home/agent", ["SECRET"], base=base)
    assert "AARLAB_TOKEN" not in env and "AARLAB_SERVER_DATA_DIR" not in env and "OTHER" not in env
    assert env["KEEP"] == "1" and env["AARLAB_HOME"] == "/home/agent"


def test_the_sandbox_bundle_endpoint_is_label_free_and_overseer_only(world: World, tmp_path: Path) -> None:
    from aarlab.api.archive import extract_bundle
    from aarlab.api.client import ServerError
    from aarlab.testbed.bundle import load_bundle

    with world.overseer() as c:
        data = c.sandbox_bundle(TASK)
        with pytest.raises(ServerError, match="404") as e:
            c.sandbox_bundle("no-such-task")
        assert "unknown task 'no-such-task'" in e.value.message
    extract_bundle(data, tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")  # what every agent's sandbox holds: inputs, weak labels, features
    assert bundle.manifest["task"] == TASK and bundle.dev.ids and bundle.features is not None
    names = {p.name for p in (tmp_path / "b").rglob("*")}
    assert not names & {"test.jsonl", "train_label.jsonl", "secret", "server.db"}
    for f in (tmp_path / "b").rglob("*.jsonl"):
        assert all("label" not in json.loads(line) for line in f.read_text().splitlines()), f
    with Client(world.server.url, _token(world, "capped")) as c, pytest.raises(ServerError, match="403"):
        c.sandbox_bundle(TASK)


class _Doomed:
    """An attempt that dies at once (as a segfaulting agent would)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def events(self) -> list[dict[str, Any]]:
        return []

    def poll(self) -> AttemptOutcome:
        return AttemptOutcome(-11, None, "Segmentation fault")

    def kill(self) -> None:
        pass


def test_restarts_are_bounded(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orch, "LocalAttempt", _Doomed)
    o = Orchestrator(
        url=world.server.url,
        overseer_token=world.server.overseer_token,
        task=TASK,
        run_dir=world.run_dir,  # reuses the exported bundle
        plans=[AgentPlan("doomed", get_direction("evolutionary"), "search", 0)],
        budget=ResearchBudget(hours=0.01),
        max_restarts=2,
        poll=0.01,
    )
    try:
        (st,) = o.run()
    finally:
        o.close()
    assert st.status == "crashed" and st.restarts == 2
    assert "exit code -11" in st.stop_reason and "Segmentation fault" in st.stop_reason
    with world.overseer() as c:
        row = next(a for a in c.agents() if a.name == "doomed")
    assert row.status == "crashed" and row.restarts == 2


def test_cli_research_joins_a_running_server(world: World) -> None:
    res = runner.invoke(
        app,
        [
            "research", "--server", world.server.url, "--token", world.server.overseer_token,
            "--data-dir", str(world.data), "--task", TASK, "--agents", "1", "--rounds", "1",
            "--hours", "0.02", "--seed", "5", "--json",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    (agent,) = data["agents"]
    assert agent["name"] == "search-strong-prior" and agent["status"] == "finished"
    assert agent["submissions"] >= 1 and len(agent["results"]) == 1
    assert "server's own worker" in data["verification"]
    assert {"name", "direction", "backend", "tokens", "dollars", "seconds", "restarts", "stop_reason"} <= set(
        agent
    )
    assert isinstance(data["leaderboard"], list) and data["leaderboard"]  # the world's verified rows


def test_cli_errors_are_clear(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("AARLAB_HOME", str(tmp_path / "home"))
    res = runner.invoke(app, ["research", "--backend", "anthropic", "--agents", "2"])
    assert res.exit_code == 2
    assert "ANTHROPIC_API_KEY" in res.output and "--backend search" in res.output
    assert not (tmp_path / "home" / "runs").exists()  # nothing started
    res = runner.invoke(app, ["research", "--task", "no-such-task", "--json"])
    assert res.exit_code == 2 and "unknown task 'no-such-task'" in res.output and "truth-cities" in res.output
    with pytest.raises(AarlabError, match="OPENAI_API_KEY"):
        run_research(ResearchConfig(backend="openai"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  summary: [unclosed\n")
    res = runner.invoke(app, ["research", "--directions", str(bad)])
    assert res.exit_code == 2 and "not valid YAML" in res.output
    join = ["research", "--server", world.server.url, "--token", "nope"]
    res = runner.invoke(app, [*join, "--data-dir", str(world.run.data_dir)])
    assert res.exit_code == 2 and "401" in res.output
    res = runner.invoke(app, [*join, "--data-dir", "x"])
    assert res.exit_code == 2 and "--data-dir x does not exist" in res.output  # a typo is not a server


def test_directions_files_and_assignment(tmp_path: Path) -> None:
    good = tmp_path / "d.yaml"
    good.write_text(
        "directions:\n"
        "  - {name: tiny-C, summary: strong regularisation, axes: [C], start: {targets: soft, C: 0.001}}\n"
        "  - {name: big-mlp, summary: an MLP head, axes: [head, C], start: {head: mlp}}\n"
    )
    ds = load_directions(good)
    assert [d.name for d in ds] == ["tiny-C", "big-mlp"] and ds[0].start["C"] == 0.001
    cases = {
        "[]": "non-empty list",
        '[{"name": "a"}]': "'summary'",
        '[{"name": "a", "summary": "s", "axes": ["colour"]}]': "unknown: colour",
        '[{"name": "a", "summary": "s", "axes": ["C"], "start": {"C": -1}}]': "bad 'start' config: C",
        '[{"name": "a", "summary": "s", "axes": ["C"]}, {"name": "a", "summary": "t", "axes": ["C"]}]': (
            "repeated: a"
        ),
        '[{"name": "a", "summary": "s", "colour": 1}]': "unknown keys",
    }
    for text, msg in cases.items():
        f = tmp_path / "x.json"
        f.write_text(text)
        with pytest.raises(AarlabError, match=msg):
            load_directions(f)
    # LLM agents need only a name and a summary
    (tmp_path / "llm.json").write_text('[{"name": "a", "summary": "s"}]')
    assert load_directions(tmp_path / "llm.json", backend="anthropic")[0].axes == ()
    with pytest.raises(AarlabError, match="no such file"):
        load_directions(tmp_path / "missing.yaml")
    # more agents than directions: reused with a suffix, names stay distinct
    names = [d.name for d in assign_directions(5, ds)]
    assert names == ["tiny-C", "big-mlp", "tiny-C-2", "big-mlp-2", "tiny-C-3"]


def test_ray_executor_runs_agents_to_the_end(
    tiny_ref: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray", reason="ray is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cfg = ResearchConfig(
        agents=2,
        task=str(tiny_ref),
        budget=ResearchBudget(hours=0.05, rounds=1, proposals_per_round=2, submissions_per_round=2),
        executor="ray",
        verify_seeds=1,
    )
    run, _ = run_research(cfg, run_dir=tmp_path / "run")
    assert [a.status for a in run.agents] == ["finished", "finished"]
    assert all(a.submissions >= 1 and len(a.results) == 1 for a in run.agents)
    assert run.verified == 2 and len(run.leaderboard) == 2
