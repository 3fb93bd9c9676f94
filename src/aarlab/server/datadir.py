"""The server's data directory: labelled tasks, the split secret, and the dev/sealed partition.

Layout of ``D``::

    D/secret                  32 random bytes (hex), mode 0600: keys the partition and the opaque ids
    D/tasks/<task>/{train_label,train_unlabel,test}.jsonl   labelled records with opaque ids
    D/tasks/<task>/task.json  schema, encoder pair and prior hypotheses

Item ids are replaced at init by an HMAC of the original id, and records are stored sorted by that id,
so neither an id nor a position can carry label information (a builder that lists true statements first
would otherwise leak labels through ids). The evaluation pool (``test``) is partitioned by entity with a
keyed hash: the partition is fixed once the secret exists, and no one without the secret can compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from aarlab.testbed.errors import AarlabError, unknown
from aarlab.testbed.loader import SPLIT_FILES, write_jsonl
from aarlab.testbed.schema import Item, LabeledSet, Record
from aarlab.testbed.tasks import TaskSpec, load_task

Partition = Literal["dev", "sealed"]
#: Share of evaluation-pool entities that go to dev; the rest is sealed. Transfer suites are other
#: tasks (other data directories' tasks), so they need no share of this pool.
DEV_FRACTION = 0.5
#: Task names safe as a folder and in a URL (the API validates with the same pattern).
TASK_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"


def secret_path(data_dir: Path) -> Path:
    return data_dir / "secret"


def ensure_secret(data_dir: Path) -> bytes:
    """Create the split secret once (mode 0600); later calls read it back. The data directory itself
    is made the owner's alone (mode 0700): it holds the labels, the database and the code store, and
    files written in it get the umask's mode (0644), which any other user of the host could read. The
    server reads the 0600 secret, so it runs as this owner anyway; confined runs see their own folders
    through binds, never through this directory."""
    path = secret_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return read_secret(data_dir)


def read_secret(data_dir: Path) -> bytes:
    path = secret_path(data_dir)
    if not path.is_file():
        raise AarlabError(
            f"{path}: no server secret; run `aarlab server init-task --data-dir {data_dir}` first"
        )
    return bytes.fromhex(path.read_text().strip())


def keyed(secret: bytes, *parts: str) -> str:
    """HMAC-SHA256 of the parts under the secret (hex)."""
    return hmac.new(secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def partition_of(secret: bytes, task: str, entity: str) -> Partition:
    """dev or sealed for an entity: a keyed hash mapped to [0, 1), so the split is stable and secret."""
    u = int(keyed(secret, "partition", task, entity)[:13], 16) / 16**13
    return "dev" if u < DEV_FRACTION else "sealed"


def task_dir(data_dir: Path, task: str) -> Path:
    return data_dir / "tasks" / task


def task_names(data_dir: Path) -> list[str]:
    root = data_dir / "tasks"
    return sorted(p.name for p in root.iterdir() if (p / "task.json").is_file()) if root.is_dir() else []


def require_data_dir(data_dir: Path, *, initialised: bool = True) -> Path:
    """Check that ``data_dir`` is a server data directory before using it; return it.

    A data directory is created only by ``server init-task``: every other command refuses a path that
    does not exist (a typo must not look like an empty server), a file, or (``initialised``) a folder
    without the split secret. Raises AarlabError saying which and what to run.
    """
    hint = f"`aarlab server init-task --data-dir {data_dir} --task TASK` creates one"
    if data_dir.is_file() or (data_dir.exists() and not data_dir.is_dir()):
        raise AarlabError(
            f"--data-dir {data_dir} is a file, not a directory; pass the server's data directory"
        )
    if not data_dir.exists():
        raise AarlabError(f"--data-dir {data_dir} does not exist (a typo?); {hint}")
    if initialised and not secret_path(data_dir).is_file():
        raise AarlabError(f"--data-dir {data_dir} is not an aarlab data directory (no secret in it); {hint}")
    return data_dir


def init_task(data_dir: Path, source: str, *, name: str | None = None, seed: int = 0) -> Path:
    """Materialise a built-in task (by name) or a reference-format directory into the data directory.

    The task is loaded and checked (empty or non-UTF-8 files, duplicate ids, a test split that repeats
    training texts: ``DataFormatError``) before anything is written; warnings about smaller overlaps are
    kept in ``task.json`` under ``data_warnings``.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise AarlabError(
            f"--data-dir {data_dir} is a file, not a directory; pass the server's data directory"
        )
    task = load_task(source)
    name = name or task.name
    if not re.fullmatch(TASK_NAME, name):
        raise AarlabError(f"bad task name {name!r}: use letters, digits, '.', '_' and '-' (pass --name)")
    splits = task.split(seed)
    out = task_dir(data_dir, name)
    if (out / "task.json").exists():
        raise AarlabError(f"{out}: task {name!r} already exists (its partition is fixed; pick another name)")
    secret = ensure_secret(data_dir)
    by_name = splits.as_dict()
    raw = task.fixed_splits or {}
    for split in SPLIT_FILES:
        labeled = by_name[split]
        records = raw.get(split) or _records_for(task.records, labeled)
        opaque = []
        for item, rec in zip(labeled.items, records, strict=True):
            new_id = keyed(secret, "id", name, item.id)[:20]
            opaque.append(rec.model_copy(update={"id": new_id, "entity": item.entity}))
        opaque.sort(key=lambda r: r.id or "")
        write_jsonl(out / f"{split}.jsonl", opaque)
    spec: TaskSpec | None = task.spec
    meta = {
        "name": name,
        "schema": task.schema,
        "weak": task.weak,
        "strong": task.strong,
        "prior_hypotheses": list(task.prior_hypotheses),
        "source": source if spec is None else f"builtin:{spec.name}",
        "data_warnings": list(task.warnings),
    }
    (out / "task.json").write_text(json.dumps(meta, indent=2))
    return out


def _records_for(pool: list[Record], labeled: LabeledSet) -> list[Record]:
    """The records behind a split of a built-in task (items and records share text, in pool order)."""
    from aarlab.testbed.schema import record_texts

    by_texts: dict[tuple[str, ...], list[Record]] = {}
    for rec in pool:
        by_texts.setdefault(record_texts(rec), []).append(rec)
    return [by_texts[it.texts].pop(0) for it in labeled.items]


@dataclass(frozen=True)
class EvalTask:
    """A task as the server holds it: metadata, the dev part of the evaluation pool and its labels."""

    name: str
    meta: dict[str, object]
    dev: LabeledSet
    sealed: LabeledSet
    dev_index: dict[str, int]

    @property
    def dev_items(self) -> tuple[Item, ...]:
        return self.dev.items


def load_eval_task(data_dir: Path, name: str) -> EvalTask:
    """Load a materialised task and partition its evaluation pool (deterministic from the secret)."""
    d = task_dir(data_dir, name)
    if not (d / "task.json").is_file():
        raise unknown("task", name, task_names(data_dir))
    secret = read_secret(data_dir)
    meta = json.loads((d / "task.json").read_text())
    test = load_task(str(d)).split(0).test
    is_dev = np.array([partition_of(secret, name, it.entity or it.id) == "dev" for it in test.items])
    dev = LabeledSet(tuple(it for it, m in zip(test.items, is_dev, strict=True) if m), test.labels[is_dev])
    sealed = LabeledSet(
        tuple(it for it, m in zip(test.items, is_dev, strict=True) if not m), test.labels[~is_dev]
    )
    return EvalTask(name, meta, dev, sealed, {it.id: i for i, it in enumerate(dev.items)})
