"""Every run of submitted code, one confined child each: a verification seed, each ablation, each
transfer-gate seed.

The trusted parent prepares a :class:`MethodRun` per run (the teacher's labels, the strong student's
features, the evaluation records; an ablation differs only in what is inside these arrays), writes each
as a re-keyed, shuffled bundle in a folder of its own, and runs the method on it in its own child, in a
random order. Every child sees the same paths, the same manifest and the same arguments, so a method
cannot tell a real run from an ablation by anything but the data itself (and the ablations keep the
data's marginals: permuted or resampled teacher labels, student features permuted across items).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.oversight.ablations import ablated_teachers, block_permutation
from aarlab.testbed.bundle import BundleMap, write_bundle
from aarlab.testbed.encoders.builtin import weight_locations
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.pipeline import validate_predictions
from aarlab.testbed.schema import Record
from aarlab.testbed.tasks.registry import ground_truth_modules
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import REASONS, SANDBOX, Limits, SandboxOutcome, method_binds, run_sandboxed


@dataclass
class MethodRun:
    """One confined run as the trusted parent sees it (``name`` never reaches the child)."""

    name: str
    seed: int
    manifest: dict[str, Any]
    unlabeled: Sequence[Record]
    weak: np.ndarray
    evaluation: Sequence[Record]
    features: np.ndarray
    prior: np.ndarray


@dataclass
class RunResult:
    """What one run gave: predictions in the run's evaluation order, or an agent-safe reason and
    overseer-only detail."""

    name: str
    seed: int
    predictions: np.ndarray | None
    status: str
    reason: str = ""
    detail: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.predictions is not None


@dataclass
class PendingRuns:
    """A seed's runs in their random order, each bundle being written by the trusted writer thread
    (:func:`start_runs`); :func:`finish_runs` runs the children."""

    order: list[MethodRun]
    bdirs: list[Path]
    written: list[Future[BundleMap]]

    def discard(self) -> None:
        """Wait for the writes, then remove every bundle (runs that will never come)."""
        for job in self.written:
            job.cancel()
        for job in self.written:
            with contextlib.suppress(BaseException):
                job.result()
        for bdir in self.bdirs:
            shutil.rmtree(bdir, ignore_errors=True)


def start_runs(runs: Sequence[MethodRun], workdir: Path, writer: Executor) -> PendingRuns:
    """Shuffle ``runs`` and queue their bundles on ``writer`` (a trusted thread), in run order."""
    workdir.mkdir(parents=True, exist_ok=True)
    order = list(runs)
    random.SystemRandom().shuffle(order)
    bdirs = [workdir / secrets.token_hex(8) for _ in order]
    return PendingRuns(order, bdirs, [writer.submit(_write, r, b) for r, b in zip(order, bdirs, strict=True)])


def finish_runs(
    pending: PendingRuns,
    method_dir: Path,
    config: dict[str, Any] | None,
    *,
    limits: Limits,
    hidden: Sequence[str | Path] = (),
    dataset_texts: Sequence[str] = (),
) -> dict[str, RunResult]:
    """Run the method once per pending run, each in its own confined child, one at a time, in the
    pending order; keyed by run name. Every bundle is removed, whatever fails."""
    # the student's knowledge reaches the method only as the features in its bundle
    hidden = [*hidden, *map(str, weight_locations())]
    policy = AuditPolicy(
        sandbox=SANDBOX,
        read_roots=default_read_roots(),
        forbidden_roots=[str(h) for h in hidden],
        dataset_texts=list(dataset_texts)[:5000],
        forbidden_modules=ground_truth_modules(),
    )
    out: dict[str, RunResult] = {}
    try:
        for run, bdir, job in zip(pending.order, pending.bdirs, pending.written, strict=True):
            mapping = job.result()
            try:
                got = run_sandboxed(
                    "aarlab.verify.jobs:method_job",
                    {
                        "bundle": f"{SANDBOX}/bundle",
                        "method": f"{SANDBOX}/method",
                        "config": config,
                        "seed": run.seed,
                    },
                    binds=method_binds(method_dir, bdir),
                    policy=policy,
                    limits=limits,
                    hidden=hidden,
                )
            finally:
                shutil.rmtree(bdir, ignore_errors=True)
            out[run.name] = _result(run, got, mapping)
    finally:
        pending.discard()  # those written ahead of a run that never came (an error above)
    return out


def execute_runs(
    runs: Sequence[MethodRun],
    method_dir: Path,
    config: dict[str, Any] | None,
    workdir: Path,
    *,
    limits: Limits,
    hidden: Sequence[str | Path] = (),
    dataset_texts: Sequence[str] = (),
) -> dict[str, RunResult]:
    """Run the method once per run, each in its own confined child, in a random order; keyed by name.

    The bundles are written one after another by one trusted thread, ahead of the runs: run i's child
    uses one core while the parent writes bundle i+1 on another. The children still run one at a
    time (siblings running together could compare notes through CPU timing), and each binds only its
    own bundle folder."""
    with ThreadPoolExecutor(1, thread_name_prefix="aarlab-bundles") as writer:
        pending = start_runs(runs, workdir, writer)
        return finish_runs(
            pending, method_dir, config, limits=limits, hidden=hidden, dataset_texts=dataset_texts
        )


def _write(run: MethodRun, bdir: Path) -> BundleMap:
    """``run``'s bundle, re-keyed with a fresh key from the system's randomness."""
    return write_bundle(
        bdir,
        run.manifest,
        run.unlabeled,
        run.weak,
        run.evaluation,
        features=run.features,
        prior=run.prior,
        rekey=np.random.default_rng(secrets.randbits(64)),
    )


def _result(run: MethodRun, got: SandboxOutcome, mapping: BundleMap) -> RunResult:
    """The run's predictions in the trusted order, or why there are none."""
    res = RunResult(run.name, run.seed, None, got.status, got.reason, got.detail, got.events, got.seconds)
    if got.status == "ok":
        try:
            if not isinstance(got.result, dict):
                raise AarlabError(f"predictions must be a mapping, got {type(got.result).__name__}")
            pred = mapping.original(got.result)
            res.predictions = validate_predictions(pred, len(run.evaluation), "the method")
        except (KeyError, TypeError, ValueError, AarlabError) as e:
            res.status, res.reason = "error", REASONS["bad-predictions"]
            res.detail = f"{type(e).__name__}: {str(e)[:2000]}"
    return res


def ablation_variants(
    real: MethodRun,
    rng: np.random.Generator,
    *,
    null_teachers: dict[str, np.ndarray],
    groups: bool,
) -> list[MethodRun]:
    """The ablations of a run, each built to look like a real run from inside the child:

    * ``teacher_permuted`` / ``teacher_random``: :func:`aarlab.oversight.ablations.ablated_teachers` of
      ``null_teachers`` (the weak teacher retrained on permuted / random labels, scored on the
      unlabeled items);
    * ``student_random``: the student's feature rows (and prior) moved group by group
      (:func:`aarlab.oversight.ablations.block_permutation`), as in the testbed's ablation;
    * ``group_shuffle`` (when the evaluation items form groups): group keys permuted across evaluation
      items, which breaks test-time structure (e.g. "exactly one of a city's statements is true") and
      nothing else; a drop discloses that a method's score uses that structure.

    What cannot be hidden: an ablation removes information, and a method can test statistically for the
    information it expects (see the README's threat model).
    """
    keys = [r.group for r in (*real.unlabeled, *real.evaluation)]
    perm = block_permutation(keys, rng)
    out = [_replace(real, kind, weak=w) for kind, w in ablated_teachers(null_teachers, real.weak).items()]
    out.append(_replace(real, "student_random", features=real.features[perm], prior=real.prior[perm]))
    if groups:
        ev_keys = [r.group for r in real.evaluation]
        shuffled = [ev_keys[i] for i in rng.permutation(len(ev_keys))]
        ev = [r.model_copy(update={"group": g}) for r, g in zip(real.evaluation, shuffled, strict=True)]
        out.append(_replace(real, "group_shuffle", evaluation=ev))
    return out


def has_groups(records: Sequence[Record]) -> bool:
    """Whether some evaluation items share a group (test-time structure a method could use)."""
    seen: set[str] = set()
    for r in records:
        if r.group is not None:
            if r.group in seen:
                return True
            seen.add(r.group)
    return False


def _replace(run: MethodRun, name: str, **changes: Any) -> MethodRun:
    data = {**run.__dict__, "name": name, **changes}
    return MethodRun(**data)
