"""Export the label-free bundle a researcher's sandbox gets (read by :mod:`aarlab.testbed.bundle`).

It holds train_unlabel and dev *inputs* (records without labels), the weak teacher's soft labels on
train_unlabel, and a manifest. Never a label, the secret, train_label or any sealed item.
"""

from __future__ import annotations

import json
from pathlib import Path

from aarlab.server.datadir import partition_of, read_secret, task_dir
from aarlab.testbed.bundle import BUNDLE_FORMAT, DEV, MANIFEST, UNLABELED, WEAK
from aarlab.testbed.errors import AarlabError, unknown
from aarlab.testbed.loader import read_jsonl, write_jsonl
from aarlab.testbed.pipeline import prepare, seed_baseline
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
    ids = [it.id for it in base.splits.train_unlabel.items]
    weak = {i: round(float(p), 6) for i, p in zip(ids, base.weak_unlabel, strict=True)}

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / UNLABELED, unlabeled, with_labels=False)
    write_jsonl(out / DEV, dev, with_labels=False)
    (out / WEAK).write_text(json.dumps(weak))
    manifest = {
        "format": BUNDLE_FORMAT,
        "task": task,
        "schema": schema,
        "weak": meta["weak"],
        "strong": meta["strong"],
        "prior_hypotheses": meta["prior_hypotheses"],
        "n_unlabeled": len(unlabeled),
        "n_dev": len(dev),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out
