"""The offline ``search`` researcher: explores the ``compose`` method space along one direction, no LLM.

Loop: pick a starting config (the direction's own, or a better verified/reported compose config another
agent shared on the forum) → propose mutations along the direction's axes (a numpy Generator seeded by
``seed``, so the proposals are the same for the same seed and server replies) → run each on the
label-free sandbox bundle → screen it with label-free signals (agreement of the student with the teacher
on unlabeled data, and how many dev predictions it changes versus the current best) → submit promising
ones to the dev endpoint (Ladder feedback) → keep the best → post findings → submit the best as a result
(snapshot + config + claimed dev score). Stops cleanly when a budget (dev submissions, wall seconds,
proposals) or the server's dev budget (403) runs out; a rate limit (429) is waited out once.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.agents.directions import AXES, Direction, get_direction
from aarlab.api.archive import pack_folder
from aarlab.api.client import Client, ServerError
from aarlab.testbed.bundle import load_bundle, run_method_on_bundle

#: The vanilla-like point of the compose space: fit the student on the teacher's hard labels.
VANILLA_CONFIG: dict[str, Any] = {"targets": "hard"}
#: What a compose snapshot's method.py holds (the verifier runs it with the submitted config).
COMPOSE_METHOD_PY = "from aarlab.testbed.methods.compose import ComposeConfig as Config, run  # noqa: F401\n"
CONFIG_MARK = "config: "
DEV_MARK = "dev_reported: "
SNAPSHOT_MARK = "snapshot: "


@dataclass(frozen=True)
class Budget:
    """Stop when any of these is used up."""

    max_submissions: int = 6
    max_seconds: float = 600.0
    max_proposals: int = 12


@dataclass
class Evaluation:
    """One proposal, its label-free signals and (if submitted) the Ladder's answer."""

    config: dict[str, Any]
    agreement: float
    changed: float
    seconds: float
    submitted: bool = False
    reported: float | None = None
    improved: bool | None = None
    predictions: dict[str, float] = field(default_factory=dict, repr=False)


@dataclass
class SearchReport:
    """What one run did."""

    agent: str
    direction: str
    seed: int
    start_config: dict[str, Any]
    start_from: str
    evaluations: list[Evaluation] = field(default_factory=list)
    submissions: int = 0
    best_config: dict[str, Any] | None = None
    best_reported: float | None = None
    posts: list[int] = field(default_factory=list)
    result_id: int | None = None
    snapshot_sha: str | None = None
    stop_reason: str = ""
    seconds: float = 0.0

    @property
    def proposals(self) -> list[dict[str, Any]]:
        return [e.config for e in self.evaluations]


def canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


class SearchResearcher:
    """An offline researcher exploring ``compose`` along ``direction``; call :meth:`run` once."""

    def __init__(
        self,
        client: Client,
        bundle_dir: Path,
        direction: str | Direction,
        seed: int,
        budget: Budget | None = None,
        *,
        min_change: float = 0.02,
        min_agreement: float = 0.55,
        follow_others: bool = True,
    ) -> None:
        self.client = client
        self.bundle_dir = Path(bundle_dir)
        self.direction = direction if isinstance(direction, Direction) else get_direction(direction)
        self.seed = seed
        self.budget = budget or Budget()
        self.min_change, self.min_agreement, self.follow_others = min_change, min_agreement, follow_others
        self.rng = np.random.default_rng(seed)
        self._bundle = load_bundle(self.bundle_dir)
        self.task: str = str(self._bundle.manifest["task"])
        self._t0 = 0.0
        #: The verified result whose config :meth:`best_shared` found (named as the parent of this
        #: round's submission when the round adopted it).
        self.shared_result_id: int | None = None
        self._parent_id: int | None = None

    # -- local, label-free evaluation ---------------------------------------------------------------
    def evaluate(self, config: dict[str, Any]) -> tuple[dict[str, float], float]:
        """Run compose on the bundle (as ``run_on_bundle`` does); returns dev predictions and the
        student's agreement with the teacher on the unlabeled data (label-free)."""
        preds, notes = run_method_on_bundle(self._bundle, "compose", config, seed=self.seed)
        return preds, float(notes.get("agreement", float("nan")))

    # -- proposals ----------------------------------------------------------------------------------
    def mutate(self, config: dict[str, Any]) -> dict[str, Any]:
        """Change one or two of the direction's axes (deterministic given the generator's state)."""
        out = dict(config)
        axes = list(self.direction.axes)
        k = 1 if len(axes) == 1 else int(self.rng.integers(1, 3))
        for i in sorted(self.rng.choice(len(axes), size=k, replace=False).tolist()):
            axis = AXES[axes[i]]
            out[axis.name] = axis.sample(self.rng, out.get(axis.name))
        return out

    def propose(self, config: dict[str, Any], seen: set[str], tries: int = 20) -> dict[str, Any] | None:
        for _ in range(tries):
            cand = self.mutate(config)
            if canonical(cand) not in seen:
                return cand
        return None

    # -- building on others ---------------------------------------------------------------------------
    def best_shared(self) -> tuple[dict[str, Any], float, str] | None:
        """The best compose config another agent shared: first from the leaderboard (configs with a
        *verified* dev score), else from ``result`` forum posts (self-reported, so only a fallback).
        Returns (config, dev score, where it came from); only compose snapshots count."""
        me = self.client.whoami().name
        self.shared_result_id = None
        rows = [  # the leaderboard is ordered by sealed score; choose by dev, never by sealed
            r
            for r in self.client.leaderboard(self.task)
            if r.agent != me and r.dev_acc is not None and r.snapshot_sha and r.config
        ]
        for row in sorted(rows, key=lambda r: -(r.dev_acc or 0.0)):
            try:
                snap = self.client.get_snapshot(row.snapshot_sha or "")
            except ServerError:
                continue
            if _is_compose_snapshot(snap):
                where = f"{row.agent} (verified result {row.result_id}, dev {row.dev_acc:.3f})"
                self.shared_result_id = row.result_id
                return dict(row.config), float(row.dev_acc or 0.0), where
        best: tuple[dict[str, Any], float, str] | None = None
        for post in self.client.posts(kind="result", q=CONFIG_MARK.strip(), limit=50).items:
            if post.author == me:
                continue
            parsed = parse_post(post.body)
            if parsed is None:
                continue
            cfg, score, sha = parsed
            if best is None or score > best[1]:
                try:
                    snap = self.client.get_snapshot(sha)
                except ServerError:
                    continue
                if not _is_compose_snapshot(snap):
                    continue
                best = (cfg, score, f"{post.author} (post {post.id}, snapshot {sha[:12]}, self-reported)")
        return best

    # -- the loop -------------------------------------------------------------------------------------
    def _out_of_time(self) -> bool:
        return time.monotonic() - self._t0 >= self.budget.max_seconds

    def _submit(self, preds: dict[str, float]) -> tuple[float, bool] | str:
        """Dev submission → (reported, improved), or a stop reason."""
        for attempt in range(2):
            try:
                fb = self.client.submit_dev(self.task, preds)
                return fb.reported_score, fb.improved
            except ServerError as e:
                if e.status == 429 and attempt == 0 and e.retry_after is not None:
                    wait = min(e.retry_after, self.budget.max_seconds - (time.monotonic() - self._t0))
                    if wait > 0:
                        time.sleep(wait)
                        continue
                if e.status in (403, 429):
                    return f"server refused dev submission ({e.status}: {e.message})"
                raise
        return "rate limited"

    def run(self) -> SearchReport:
        self._t0 = time.monotonic()
        self._parent_id = None
        me = self.client.whoami().name
        start = {**self.direction.start}
        start_from = f"direction {self.direction.name!r}"
        shared = self.best_shared() if self.follow_others else None
        report = SearchReport(me, self.direction.name, self.seed, start, start_from)
        seen: set[str] = set()
        best: Evaluation | None = None
        best_preds: np.ndarray | None = None
        queue: list[dict[str, Any]] = [start]
        if shared is not None:
            # Adoption rule: try the own direction's start first, then the shared config; mutations
            # start from whichever the Ladder ranks higher. Adopting the first shared config outright
            # made every researcher search the same neighbourhood.
            cfg = {k: v for k, v in shared[0].items() if k in AXES}
            if canonical(cfg) != canonical(start):
                queue = [start, cfg]
                self._parent_id = self.shared_result_id
            report.start_from = f"own direction, then the shared config of {shared[2]}"
        ids = list(self._bundle.dev.ids)
        stop = ""
        while not stop:
            if len(report.evaluations) >= self.budget.max_proposals:
                stop = f"proposal budget used ({self.budget.max_proposals})"
                break
            if report.submissions >= self.budget.max_submissions:
                stop = f"submission budget used ({self.budget.max_submissions})"
                break
            if self._out_of_time():
                stop = f"wall budget used ({self.budget.max_seconds:.0f} s)"
                break
            if queue:
                cand: dict[str, Any] | None = queue.pop(0)
            else:
                parent = best.config if best is not None else start
                cand = self.propose(parent, seen)
            if cand is None:
                stop = "no new proposal along this direction"
                break
            key = canonical(cand)
            if key in seen:
                continue
            seen.add(key)
            t = time.monotonic()
            preds, agreement = self.evaluate(cand)
            vec = np.array([preds[i] for i in ids])
            changed = 1.0 if best_preds is None else float(np.mean((vec > 0.5) != (best_preds > 0.5)))
            ev = Evaluation(cand, agreement, changed, time.monotonic() - t, predictions=preds)
            report.evaluations.append(ev)
            # label-free screen: a collapsed student (far from the teacher) or a near-copy of the
            # current best (the Ladder cannot report it) is not worth a dev submission
            if best is not None and (changed < self.min_change or not agreement >= self.min_agreement):
                continue
            answer = self._submit(preds)
            if isinstance(answer, str):
                stop = answer
                break
            report.submissions += 1
            ev.submitted, (ev.reported, ev.improved) = True, answer
            if best is None or ev.improved:
                best, best_preds = ev, vec
        report.stop_reason = stop
        if best is not None:
            report.best_config, report.best_reported = best.config, best.reported
            self._share(report, best)
        report.seconds = time.monotonic() - self._t0
        return report

    def _share(self, report: SearchReport, best: Evaluation) -> None:
        """Post an insight (what was tried), submit the best as a result and post it (config + evidence)."""
        tried = [e for e in report.evaluations if e.submitted]
        lines = [
            f"direction {self.direction.name!r} (axes: {', '.join(self.direction.axes)}), seed {self.seed}, "
            f"started from {report.start_from}; {len(report.evaluations)} proposals, "
            f"{report.submissions} dev submissions; stopped: {report.stop_reason}.",
            "submitted configs (Ladder reported dev score, improved?, teacher agreement on unlabeled):",
        ]
        lines += [
            f"- {canonical(e.config)} -> {e.reported}, {e.improved}, agreement {e.agreement:.3f}"
            for e in tried
        ]
        skipped = len(report.evaluations) - len(tried)
        if skipped:
            lines.append(f"{skipped} proposals screened out label-free (too few changed predictions).")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "method.py").write_text(COMPOSE_METHOD_PY)
            sha = self.client.put_snapshot(pack_folder(Path(tmp))).sha256
        report.snapshot_sha = sha
        claimed = {"dev_acc": float(best.reported)} if best.reported is not None else {}
        report.result_id = self.client.submit_result(
            self.task, sha, best.config, claimed=claimed, parent_id=self._parent_id
        ).id
        title = f"[{self.direction.name}] notes from search seed {self.seed}"
        report.posts.append(self.client.post("insight", title, "\n".join(lines)).id)
        body = "\n".join(
            [
                f"best compose config along {self.direction.name!r}, submitted as result {report.result_id}.",
                f"{CONFIG_MARK}{canonical(best.config)}",
                f"{DEV_MARK}{best.reported}",
                f"{SNAPSHOT_MARK}{sha}",
                f"teacher agreement on unlabeled: {best.agreement:.3f}",
            ]
        )
        report.posts.append(self.client.post("result", f"[{self.direction.name}] best config", body).id)


def parse_post(body: str) -> tuple[dict[str, Any], float, str] | None:
    """(config, reported dev score, snapshot sha) from a ``result`` post that :class:`SearchResearcher`
    wrote; None for any other post."""
    cfg = re.search(r"^" + CONFIG_MARK + r"(\{.*\})\s*$", body, re.M)
    dev = re.search(r"^" + DEV_MARK + r"([0-9.]+)\s*$", body, re.M)
    sha = re.search(r"^" + SNAPSHOT_MARK + r"([0-9a-f]{64})\s*$", body, re.M)
    if not (cfg and dev and sha):
        return None
    try:
        config = json.loads(cfg.group(1))
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    return config, float(dev.group(1)), sha.group(1)


def _is_compose_snapshot(data: bytes) -> bool:
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.extractfile("method.py")
            return member is not None and b"aarlab.testbed.methods.compose" in member.read()
    except (tarfile.TarError, KeyError, OSError):
        return False
