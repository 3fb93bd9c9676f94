"""The transfer gate's runs of a submitted method: one confined child per suite seed.

For each pre-registered suite the trusted parent prepares the task and the vanilla baseline, and runs
the method once per seed, each in its own confined child (:func:`aarlab.verify.execute.execute_runs`,
the same layer as verification): bundles re-keyed and shuffled as the server's tasks are, manifests that
never say what the run is for. The labels never leave the parent. The server's transfer job
(:mod:`aarlab.server.transfer_worker`) hands a :class:`SandboxCollector` to
:func:`aarlab.transfer.gate.run_gate` and stores the verdict.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from aarlab.oversight.flags import Flag, failure_flag
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
from aarlab.transfer.gate import Suite, suite_task
from aarlab.transfer.stats import PairedSeed
from aarlab.verify.artefacts import PARENT_LOCK
from aarlab.verify.execute import MethodRun, execute_runs
from aarlab.verify.sandbox import Limits

__all__ = [
    "SandboxCollector",
    "SnapshotConfig",
    "SuiteCost",
    "prepare_suites",
    "prepare_suites_in_background",
    "snapshot_spec",
]


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
        with PARENT_LOCK:
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
            with PARENT_LOCK:
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


@dataclass(frozen=True)
class SuiteCost:
    """What preparing one suite cost: its pool encoded by both models (seconds; ~0 when cached)."""

    suite: str
    items: int
    seconds: float
    error: str = ""


def prepare_suites(
    suites: Sequence[Suite], report: Callable[[SuiteCost], None] | None = None
) -> list[SuiteCost]:
    """Encode every suite's pool with its weak and strong model into the trusted feature cache, before
    the gate needs it (at task initialisation, or in a background thread while agents work), so a gate
    run starts warm. ``report`` is told each suite's cost as it finishes. Never raises: a suite that
    cannot be prepared is reported with its error and left for the gate itself to report."""
    out: list[SuiteCost] = []
    for suite in suites:
        t0 = time.perf_counter()
        try:
            task = suite_task(suite)
            with PARENT_LOCK:
                prepare(task, suite.weak, suite.strong, show_progress=False)
            cost = SuiteCost(suite.name, len(task.records), time.perf_counter() - t0)
        except Exception as e:
            cost = SuiteCost(suite.name, 0, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
        out.append(cost)
        if report is not None:
            report(cost)
    return out


def prepare_suites_in_background(suites: Sequence[Suite]) -> threading.Thread:
    """:func:`prepare_suites` in a daemon thread of this process (returns it, started)."""
    t = threading.Thread(target=prepare_suites, args=(list(suites),), name="aarlab-gate-suites", daemon=True)
    t.start()
    return t
