"""Supervision: register agents, launch their attempts in parallel, restart crashes (bounded), enforce
every budget, and record each agent's usage on the server while they run.

Everything goes through the server's API (:class:`aarlab.api.client.Client`) with an overseer token:
``POST /api/v1/agents`` registers an agent, ``GET /api/v1/tasks/{task}/sandbox`` gives the label-free
bundle every agent's sandbox gets a copy of, ``PUT /api/v1/agents/{name}/usage`` records usage. Nothing
here reads the server's database or data directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aarlab.agents.orchestrator.attempts import (
    AgentJob,
    Attempt,
    AttemptOutcome,
    LocalAttempt,
    RayAttempt,
    agent_env,
)
from aarlab.agents.orchestrator.plans import AgentPlan, AgentState, ResearchBudget, direction_to_json
from aarlab.agents.orchestrator.runners import own_usage
from aarlab.api.archive import extract_bundle
from aarlab.testbed.errors import AarlabError

#: Seconds an agent may run past its wall budget (finishing a step, submitting its best) before it is
#: killed: the agent's own loop should stop first; this is the backstop.
GRACE_S = 20.0


def attach_verified(states: list[AgentState], client: Any, task: str) -> None:
    """Set each state's ``verified_dev``: its best verified dev accuracy on the leaderboard (or None)."""
    board = client.leaderboard(task)
    for st in states:
        devs = [r.dev_acc for r in board if r.agent == st.name and r.dev_acc is not None]
        st.verified_dev = max(devs) if devs else None


@dataclass
class _Live:
    """The orchestrator's view of one agent: plan, token, folders, current attempt."""

    plan: AgentPlan
    token: str
    sandbox: Path
    state_dir: Path
    home: Path
    budget: ResearchBudget
    state: AgentState
    attempt: Attempt | None = None
    attempt_no: int = 0
    attempt_t0: float = 0.0
    attempt_max_s: float = 0.0
    live: dict[str, Any] = field(default_factory=dict)
    killed_for: str = ""
    last_put: float = 0.0
    dirty: bool = True


class Orchestrator:
    """Register agents, launch them in parallel, restart crashes, enforce budgets, record usage.

    Everything goes through the server's API with ``overseer_token``. ``server_paths`` are paths on this
    machine that belong to the server (its data directory, when it runs here): never passed to an agent
    (scrubbed from its environment by value) and hidden from an LLM agent's shell. ``run_dir`` holds the
    bundle (``bundle/``) and each agent's folders (``agents/NAME/{sandbox,state,home}``).

    Raises AarlabError for an unknown executor or repeated agent names."""

    def __init__(
        self,
        *,
        url: str,
        overseer_token: str,
        task: str,
        run_dir: Path,
        plans: Sequence[AgentPlan],
        budget: ResearchBudget,
        executor: str = "local",
        address: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        max_restarts: int = 2,
        crash_attempts: dict[str, int] | None = None,
        on_update: Callable[[list[AgentState]], None] | None = None,
        poll: float = 0.25,
        cpus_per_agent: float = 1.0,
        server_paths: Sequence[Path] = (),
    ) -> None:
        if executor not in ("local", "ray"):
            raise AarlabError(f"unknown executor {executor!r}; available: local, ray")
        names = [p.name for p in plans]
        if len(set(names)) != len(names):
            raise AarlabError("agent names must be distinct")
        self.url, self._overseer = url, overseer_token
        self.server_paths, self.task, self.run_dir = [Path(p) for p in server_paths], task, run_dir
        self.plans, self.budget = list(plans), budget
        self.executor, self.address, self.model, self.base_url = executor, address, model, base_url
        self.max_restarts, self.crash_attempts = max_restarts, dict(crash_attempts or {})
        self.on_update, self.poll, self.cpus_per_agent = on_update, poll, cpus_per_agent
        self.agents: list[_Live] = []
        self._ray_started = False
        self._bundle_bytes: bytes | None = None
        from aarlab.api.client import Client

        self.client = Client(url, overseer_token)

    # -- setup -------------------------------------------------------------------------------------------
    def register(self) -> list[AgentState]:
        """Create each agent's token (``POST /api/v1/agents``), folders and sandbox (a copy of the task's
        label-free bundle, fetched once from the server into ``run_dir/bundle``)."""
        from aarlab.config import get_settings

        staging = self.run_dir / "bundle"
        if not (staging / "manifest.json").is_file():
            bundle = self.client.sandbox_bundle(self.task)
            extract_bundle(bundle, staging)
            if self.executor == "ray":  # shipped with each Ray task (another node has no run_dir)
                self._bundle_bytes = bundle
        shared = get_settings().home
        for plan in self.plans:
            token = self.client.register_agent(plan.name, "agent").token
            root = self.run_dir / "agents" / plan.name
            sandbox, state_dir, home = root / "sandbox", root / "state", root / "home"
            shutil.copytree(staging, sandbox)
            state_dir.mkdir(parents=True, exist_ok=True)
            home.mkdir(parents=True, exist_ok=True)
            # label-free caches only: encoder weights and text features (never built task pools)
            for sub in ("features", "models"):
                (shared / sub).mkdir(parents=True, exist_ok=True)
                if not (home / sub).exists():
                    (home / sub).symlink_to(shared / sub, target_is_directory=True)
            st = AgentState(plan.name, plan.direction.name, plan.backend, plan.seed)
            self.agents.append(_Live(plan, token, sandbox, state_dir, home, plan.budget or self.budget, st))
            self.client.put_usage(
                plan.name,
                direction=plan.direction.name,
                backend=plan.backend,
                status="registered",
                note=plan.direction.summary[:2000],
            )
        return [a.state for a in self.agents]

    # -- attempts ------------------------------------------------------------------------------------------
    def _job(self, a: _Live) -> AgentJob:
        b = a.budget
        st = a.state
        left_s = max(1.0, b.max_seconds - st.seconds)
        return AgentJob(
            name=a.plan.name,
            token=a.token,
            server_url=self.url,
            task=self.task,
            backend=a.plan.backend,
            direction=direction_to_json(a.plan.direction),
            seed=a.plan.seed,
            sandbox=str(a.sandbox),
            state_dir=str(a.state_dir),
            home=str(a.home),
            attempt=a.attempt_no,
            max_seconds=left_s,
            max_tokens=None if b.max_tokens is None else max(0, b.max_tokens - st.tokens_in - st.tokens_out),
            max_dollars=None if b.max_dollars is None else max(0.0, b.max_dollars - st.dollars),
            max_submissions=b.max_submissions,
            rounds=b.rounds,
            proposals_per_round=b.proposals_per_round,
            submissions_per_round=b.submissions_per_round,
            model=self.model,
            base_url=self.base_url,
            crash_attempts=self.crash_attempts.get(a.plan.name, 0),
            hidden=self._hidden_for(a),
        )

    def _hidden_for(self, a: _Live) -> list[str]:
        """What an LLM agent's confined shell must not see. Only LLM agents run model-written commands;
        the search and red-team runners are our code, so their jobs carry no server paths at all."""
        if a.plan.backend not in ("anthropic", "openai"):
            return []
        others = [str(o.sandbox.parent.resolve()) for o in self.agents if o is not a]
        return [*(str(p.resolve()) for p in self.server_paths), *others]

    def _sensitive(self) -> list[str]:
        paths = [s for p in self.server_paths for s in (str(p), str(p.resolve()))]
        return [self._overseer, *paths]

    def _start(self, a: _Live) -> None:
        job = self._job(a)
        a.attempt_t0, a.attempt_max_s, a.live, a.killed_for = time.monotonic(), job.max_seconds, {}, ""
        if self.executor == "ray":
            keys = [k for k, v in os.environ.items() if any(s in v for s in self._sensitive())]
            if self._bundle_bytes is None:
                from aarlab.api.archive import pack_folder

                self._bundle_bytes = pack_folder(self.run_dir / "bundle")
            a.attempt = RayAttempt(job, self._bundle_bytes, keys, self.cpus_per_agent)
        else:
            env = agent_env(str(a.home), self._sensitive())
            a.attempt = LocalAttempt(job, env, a.state_dir / f"attempt-{a.attempt_no}.log")
        a.state.status = "running"
        a.dirty = True

    def _absorb(self, a: _Live, events: list[dict[str, Any]]) -> None:
        for ev in events:
            a.live.update({k: v for k, v in ev.items() if k != "type"})
        if not events:
            return
        st, base = a.state, a.state._base
        if "submissions" in a.live:
            st.submissions = max(st.submissions, int(a.live["submissions"]))
        if "results" in a.live:
            st.results = sorted(set(st.results) | {int(r) for r in a.live["results"]})
        st.tokens_in = int(base.get("tokens_in", 0) + a.live.get("tokens_in", 0))
        st.tokens_out = int(base.get("tokens_out", 0) + a.live.get("tokens_out", 0))
        st.dollars = float(base.get("dollars", 0.0) + a.live.get("dollars", 0.0))
        if a.live.get("best_dev") is not None:
            v = float(a.live["best_dev"])
            st.best_dev = v if st.best_dev is None else max(st.best_dev, v)
        a.dirty = True

    def _reconcile(self, a: _Live) -> None:
        """Submissions and results from the server (the truth, also after a crash)."""
        from aarlab.api.client import Client

        try:
            with Client(self.url, a.token) as c:
                subs, results = own_usage(c, self.task)
            a.state.submissions, a.state.results = subs, results
        except Exception:  # the server is the orchestrator's own; keep the event-based numbers
            pass

    def _enforce(self, a: _Live, now: float) -> None:
        """Kill an attempt that overran a budget (the agent's own loop should have stopped first)."""
        st, b = a.state, a.budget
        reason = ""
        # On Ray an attempt may wait in the cluster's queue before it starts: a looser backstop there.
        allowed = a.attempt_max_s * (2 if self.executor == "ray" else 1) + max(
            GRACE_S, 0.05 * a.attempt_max_s
        )
        if now - a.attempt_t0 > allowed:
            reason = f"wall budget exceeded ({b.hours:g} h): killed"
        elif b.max_tokens is not None and st.tokens_in + st.tokens_out > b.max_tokens:
            reason = f"token budget exceeded ({b.max_tokens}): killed"
        elif b.max_dollars is not None and st.dollars > b.max_dollars:
            reason = f"dollar budget exceeded (${b.max_dollars:g}): killed"
        elif b.max_submissions is not None and st.submissions > b.max_submissions:
            reason = f"submission budget exceeded ({b.max_submissions}): killed"
        if reason and a.attempt is not None:
            a.killed_for = reason
            a.attempt.kill()

    def _finish_attempt(self, a: _Live, out: AttemptOutcome, now: float) -> None:
        assert a.attempt is not None
        self._absorb(a, a.attempt.events())
        st = a.state
        st.seconds = float(a.state._base.get("seconds", 0.0) + (now - a.attempt_t0))
        st._base = {
            "tokens_in": st.tokens_in,
            "tokens_out": st.tokens_out,
            "dollars": st.dollars,
            "seconds": st.seconds,
        }
        a.attempt = None
        self._reconcile(a)
        if a.killed_for:
            st.status, st.stop_reason = "stopped", a.killed_for
        elif out.done is not None and out.done.get("status") in ("finished", "stopped"):
            st.status, st.stop_reason = out.done["status"], str(out.done.get("stop_reason", ""))
        else:
            why = f"crashed (exit code {out.exit_code})" + (
                f": {out.log_tail.splitlines()[-1]}" if out.log_tail else ""
            )
            if st.restarts < self.max_restarts and st.seconds < a.budget.max_seconds:
                st.restarts += 1
                st.note = why[:2000]
                a.attempt_no += 1
                self._start(a)
                return
            st.status = "crashed"
            st.stop_reason = f"{why}; {st.restarts} restart(s) used"
        a.dirty = True

    def _put(self, a: _Live, now: float, force: bool = False) -> None:
        if not (a.dirty and (force or now - a.last_put >= 1.0)):
            return
        st = a.state
        try:
            self.client.put_usage(
                st.name,
                status=st.status,
                tokens_in=st.tokens_in,
                tokens_out=st.tokens_out,
                dollars=st.dollars,
                seconds=st.seconds
                if a.attempt is None
                else st._base.get("seconds", 0.0) + now - a.attempt_t0,
                submissions=st.submissions,
                results=len(st.results),
                restarts=st.restarts,
                note=(st.stop_reason or st.note or None),
            )
            a.dirty, a.last_put = False, now
        except Exception:  # usage is retried on the next tick
            pass

    # -- the run ---------------------------------------------------------------------------------------------
    def init_ray(self) -> None:
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "ignore_reinit_error": True,
            }
            if self.address:
                kwargs["address"] = self.address
            else:  # a local Ray: room for every agent at once (as the local executor does) + verification
                kwargs["num_cpus"] = max(2, os.cpu_count() or 1, len(self.plans) + 1)
            ray.init(**kwargs)
            self._ray_started = True

    def run(self, stop: threading.Event | None = None) -> list[AgentState]:
        """Run every registered agent to the end; returns their final states."""
        if not self.agents:
            self.register()
        if self.executor == "ray":
            self.init_ray()
        last_board = 0.0
        try:
            for a in self.agents:
                self._start(a)
            while True:
                now = time.monotonic()
                if now - last_board > 3.0:  # verified scores for the display, as the worker produces them
                    last_board = now
                    with contextlib.suppress(Exception):
                        attach_verified([a.state for a in self.agents], self.client, self.task)
                for a in self.agents:
                    if a.attempt is None:
                        continue
                    self._absorb(a, a.attempt.events())
                    a.state.seconds = float(a.state._base.get("seconds", 0.0) + now - a.attempt_t0)
                    if stop is not None and stop.is_set() and not a.killed_for:
                        a.killed_for = "stopped by the operator"
                        a.attempt.kill()
                    self._enforce(a, now)
                    out = a.attempt.poll()
                    if out is not None:
                        self._finish_attempt(a, out, now)
                    self._put(a, now, force=a.state.done)
                if self.on_update is not None:
                    self.on_update([a.state for a in self.agents])
                if all(a.attempt is None for a in self.agents):
                    break
                time.sleep(self.poll)
            for a in self.agents:
                a.dirty = True
                self._put(a, time.monotonic(), force=True)
        except KeyboardInterrupt:  # Ctrl-C: stop every agent, record why, then let the caller exit
            for a in self.agents:
                if a.attempt is not None:
                    a.attempt.kill()
                    a.attempt = None
                    a.state.status, a.state.stop_reason = "stopped", "interrupted (Ctrl-C)"
                    a.dirty = True
                    self._put(a, time.monotonic(), force=True)
            raise
        finally:
            for a in self.agents:
                if a.attempt is not None:
                    a.attempt.kill()
        return [a.state for a in self.agents]

    def close(self) -> None:
        self.client.close()
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False
