"""Export the label-free bundle a researcher's sandbox gets (read by :mod:`aarlab.testbed.bundle`).

It holds train_unlabel and dev *inputs* (records without labels), the weak teacher's soft labels on
train_unlabel, the strong encoder's features for both, and a manifest.
Never a label, the secret, train_label or any sealed item.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aarlab.server.datadir import partition_of, read_secret, task_dir
from aarlab.testbed.bundle import write_bundle
from aarlab.testbed.errors import AarlabError, unknown
from aarlab.testbed.loader import read_jsonl
from aarlab.testbed.pipeline import prepare, seed_baseline
from aarlab.testbed.schema import Inputs
from aarlab.testbed.tasks import load_task


def export_sandbox(data_dir: Path, task: str, out: Path, *, show_progress: bool = False) -> Path:
    """Write the bundle for ``task`` into ``out`` (which must be empty or absent)."""
    d = task_dir(data_dir, task)
    if not (d / "task.json").is_file():
        from aarlab.server.datadir import task_names

        raise unknown("task", task, task_names(data_dir))
    if out.exists() and any(out.iterdir()):
        raise AarlabError(f"{out}: not empty; export into a new folder")
    secret = read_secret(data_dir)
    meta = json.loads((d / "task.json").read_text())
    schema, unlabeled = read_jsonl(d / "train_unlabel.jsonl")
    _, test = read_jsonl(d / "test.jsonl", schema)
    dev = [r for r in test if partition_of(secret, task, r.entity or r.id or "") == "dev"]

    loaded = load_task(str(d))
    prep = prepare(loaded, meta["weak"], meta["strong"], show_progress=show_progress)
    base = seed_baseline(prep, 0)
    unl_inputs = base.splits.train_unlabel.inputs
    if unl_inputs.ids != [r.id for r in unlabeled]:
        raise AarlabError(f"{d}: train_unlabel.jsonl changed while exporting; export again")
    strong = prep.strong_model(0)
    dev_inputs = Inputs(tuple(it for it in base.splits.test.items if it.id in {r.id for r in dev}))
    features = np.vstack([strong.features(unl_inputs), strong.features(dev_inputs)])
    prior = np.concatenate([strong.prior(unl_inputs), strong.prior(dev_inputs)])
    manifest = {
        "task": task,
        "schema": schema,
        "weak": meta["weak"],
        "strong": meta["strong"],
        "prior_hypotheses": meta["prior_hypotheses"],
        "n_unlabeled": len(unlabeled),
        "n_dev": len(dev),
    }
    weak = np.round(base.weak_unlabel, 6)
    write_bundle(out, manifest, unlabeled, weak, dev, features=features, prior=prior)
    return out
