"""Measure weak → strong pairs on the reference-format tasks (chat preference, math correctness).

For each (task, text view, weak encoder, strong encoder) it runs the real pipeline (`run_experiment`,
split by `consistency_id` group per seed, logistic probes, two-level bootstrap) on a seeded subsample of
groups, and prints one JSON line: weak / ceiling / gap with CI, vanilla PGR with CI, seconds. Features go
through the on-disk cache, so a second run of the same encoder is cheap.

    python bench/reference_pairs.py --task reference-chat --pairs minilm-l3:minilm-l6 tfidf:minilm-l6 \
        --views full reply --groups 900 --seeds 5

Views (what the encoders read; the data is never changed on disk): ``full`` = the record as the task
presents it, ``reply`` (chat) = the two replies without the shared conversation, ``last-turn`` (chat) = the
last human turn plus each reply.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from aarlab.testbed.pipeline import run_experiment
from aarlab.testbed.schema import PairwiseRecord, Record, SingleRecord
from aarlab.testbed.tasks import Task, load_task


def _last_turn(prompt: str) -> str:
    cut = prompt.rfind("Human:")
    return prompt[cut:] if cut >= 0 else prompt[-400:]


def view(rec: Record, name: str) -> Record:
    """The record as one text view presents it (labels and groups unchanged)."""
    if name == "full":
        return rec
    if isinstance(rec, PairwiseRecord):
        if name == "reply":
            return rec.model_copy(update={"prompt": "Reply:"})
        if name == "last-turn":
            return rec.model_copy(update={"prompt": _last_turn(rec.prompt)})
    if isinstance(rec, SingleRecord) and name == "solution":
        return rec.model_copy(update={"question": ""})
    raise SystemExit(f"view {name!r} does not apply to this task")


def subsample(task: Task, groups: int, seed: int = 0) -> list[Record]:
    keys = sorted({r.entity or r.group or "" for r in task.records})
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(keys, size=min(groups, len(keys)), replace=False).tolist())
    return [r for r in task.records if (r.entity or r.group or "") in keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--pairs", nargs="+", required=True, help="weak:strong encoder ids")
    ap.add_argument("--views", nargs="+", default=["full"])
    ap.add_argument("--groups", type=int, default=0, help="subsample this many groups (0 = all)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--method", default="vanilla")
    args = ap.parse_args()
    base = load_task(args.task)
    records = subsample(base, args.groups) if args.groups else base.records
    for v in args.views:
        recs = [view(r, v) for r in records]
        task = Task(name=f"{base.name}-{v}-{len(recs)}", schema=base.schema, records=recs, spec=base.spec)
        for pair in args.pairs:
            weak, strong = pair.split(":")
            t0 = time.perf_counter()
            r = run_experiment(
                task, args.method, seeds=args.seeds, weak=weak, strong=strong, show_progress=False
            ).to_json()
            out = {
                "task": base.name,
                "view": v,
                "records": len(recs),
                "weak": weak,
                "strong": strong,
                "weak_acc": round(r["weak_acc"], 3),
                "ceiling_acc": round(r["ceiling_acc"], 3),
                "gap": round(r["gap"], 3),
                "gap_ci": [round(x, 3) for x in r["gap_ci"]],
                "resolvable": r["gap_resolvable"],
                "transfer_acc": round(r["transfer_acc"], 3),
                "pgr": None if r["pgr"] is None else round(r["pgr"], 2),
                "pgr_ci": None if r["pgr_ci"] is None else [round(x, 2) for x in r["pgr_ci"]],
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
