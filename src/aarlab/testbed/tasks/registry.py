"""Task specs, the task registry, and seeded splitting by entity.

A built-in task is a deterministic *pool* of labelled records built from a PyPI package (cached on disk
as JSONL, keyed by task version) plus a rule to split it. Splits are drawn per seed over *entities*
(a problem, a city), so no entity ever appears in two splits; varying the seed varies the split, which
is what the pipeline's seed noise measures.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aarlab.config import get_settings
from aarlab.registry import Registry
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.loader import SPLIT_FILES, read_jsonl, read_task_dir, write_jsonl
from aarlab.testbed.schema import LabeledSet, Record, SchemaName, item_from_record, record_label
from aarlab.testbed.split_checks import check_splits

log = logging.getLogger(__name__)
#: Task directories whose warnings were logged in this process (each is said once).
_WARNED: set[str] = set()

Builder = Callable[[], list[Record]]


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to (re)build a built-in task and run it with sensible defaults."""

    name: str
    description: str
    schema: SchemaName
    build: Builder = field(repr=False)
    weak: str
    strong: str
    version: str = "1"
    fractions: tuple[float, float, float] = (0.25, 0.40, 0.35)
    #: (positive, negative) descriptions for an encoder's zero-shot prior (``ctx.strong.prior``).
    prior_hypotheses: tuple[str, str] = ("This is correct.", "This is incorrect.")
    #: Set when the measured ceiling − weak gap is inside seed noise: the task is never used for a PGR claim.
    gap_note: str | None = None
    #: Where no CPU pair has a resolvable gap: the command that runs the task on the GPU path (the lm
    #: backend with the reference study's pair), shown by ``aarlab tasks list`` and ``aarlab baseline``.
    gpu_command: str | None = None
    source: str = ""
    #: Python packages whose files hold this task's ground truth (the source data). A verified run must
    #: never read them: the sandbox forbids their directories.
    source_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Splits:
    """The three testbed splits for one seed."""

    train_label: LabeledSet
    train_unlabel: LabeledSet
    test: LabeledSet

    def as_dict(self) -> dict[str, LabeledSet]:
        return {"train_label": self.train_label, "train_unlabel": self.train_unlabel, "test": self.test}


@dataclass
class Task:
    """A loaded task: a labelled pool and a way to split it per seed."""

    name: str
    schema: SchemaName
    records: list[Record]
    spec: TaskSpec | None = None
    fixed_splits: dict[str, list[Record]] | None = None
    #: What ``split_checks.check_splits`` found worth saying about a directory's splits (overlaps, ...).
    warnings: list[str] = field(default_factory=list)

    @property
    def weak(self) -> str:
        return self.spec.weak if self.spec else "minilm-l6"

    @property
    def strong(self) -> str:
        return self.spec.strong if self.spec else "mpnet"

    @property
    def prior_hypotheses(self) -> tuple[str, str]:
        return self.spec.prior_hypotheses if self.spec else TaskSpec.prior_hypotheses

    def labeled(self, records: list[Record], prefix: str) -> LabeledSet:
        items = tuple(item_from_record(r, f"{prefix}-{i}") for i, r in enumerate(records))
        labels = np.array([bool(record_label(r)) for r in records], dtype=bool)
        return LabeledSet(items, labels)

    def split(self, seed: int = 0, *, subsample: float | None = None) -> Splits:
        """Split by entity for this seed.

        Fixed splits (a reference directory) ignore the seed unless ``subsample`` is given: then the
        seed draws that share of ``train_label`` and of ``train_unlabel`` (by entity, without
        replacement), so that the teacher, the student and the ceiling really change with the seed;
        ``test`` is never touched.
        """
        if self.fixed_splits is not None:
            parts = dict(self.fixed_splits)
            if subsample is not None:
                if not 0 < subsample <= 1:
                    raise AarlabError(f"subsample must be in (0, 1], got {subsample}")
                for name in ("train_label", "train_unlabel"):
                    parts[name] = subsample_by_entity(parts[name], subsample, seed, name)
            return Splits(*(self.labeled(parts[n], n) for n in SPLIT_FILES))
        fractions = self.spec.fractions if self.spec else (0.25, 0.40, 0.35)
        drawn = split_by_entity(self.records, fractions, seed)
        return Splits(*(self.labeled(p, self.name) for p in drawn))

    def pool(self) -> LabeledSet:
        """Every record with ids stable across seeds (ids are assigned once, over the whole pool)."""
        return self.labeled(self.records, self.name)


def _entity(rec: Record, index: int) -> str:
    return rec.entity or rec.group or rec.id or f"#{index}"


def split_by_entity(
    records: list[Record], fractions: tuple[float, float, float], seed: int
) -> tuple[list[Record], list[Record], list[Record]]:
    """Shuffle entities with ``seed`` and fill the splits in order up to their share of records."""
    entities: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        entities.setdefault(_entity(rec, i), []).append(i)
    keys = sorted(entities)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    total = len(records)
    bounds = np.cumsum(fractions) / np.sum(fractions) * total
    chosen: tuple[list[int], list[int], list[int]] = ([], [], [])
    filled = 0
    for k in order:
        idx = entities[keys[k]]
        part = 0 if filled < bounds[0] else (1 if filled < bounds[1] else 2)
        chosen[part].extend(idx)
        filled += len(idx)
    # Pool order within each split, so item order never depends on the shuffle.
    a, b, c = ([records[i] for i in sorted(part)] for part in chosen)
    return a, b, c


def subsample_by_entity(records: list[Record], share: float, seed: int, salt: str) -> list[Record]:
    """``share`` of the records' entities (at least one), drawn with ``seed``; pool order kept."""
    entities: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        entities.setdefault(_entity(rec, i), []).append(i)
    keys = sorted(entities)
    rng = np.random.default_rng([seed, int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)])
    k = max(1, round(share * len(keys)))
    chosen = sorted(i for j in rng.choice(len(keys), size=k, replace=False) for i in entities[keys[j]])
    return [records[i] for i in chosen]


#: The built-in tasks by name; each task module registers its spec beside its builder.
TASKS: Registry[TaskSpec] = Registry("task", builtins=("aarlab.testbed.tasks.builtin",))


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a built-in task to the registry (names are unique: a second ``spec.name`` raises ValueError)."""
    return TASKS.register(spec.name, spec)


def task_names() -> list[str]:
    """The built-in task names, sorted."""
    return TASKS.names()


def get_spec(name: str) -> TaskSpec:
    """The built-in task called ``name``; raises ``UnknownNameError`` listing the task names."""
    return TASKS.get(name)


def _pool_path(spec: TaskSpec) -> Path:
    key = hashlib.sha256(f"{spec.name}:{spec.version}".encode()).hexdigest()[:12]
    return get_settings().data_cache / f"{spec.name}-v{spec.version}-{key}.jsonl"


def load_task(name_or_path: str, *, rebuild: bool = False) -> Task:
    """Load a built-in task by name (building and caching its pool) or a reference-format directory."""
    path = Path(name_or_path)
    if path.is_dir():
        schema, splits = read_task_dir(path)
        warnings = check_splits(splits)  # refuses duplicate ids and a test split that repeats training
        key = str(path.resolve())
        if warnings and key not in _WARNED:
            _WARNED.add(key)
            for w in warnings:
                log.warning("%s: %s", path, w)
        records = [r for n in SPLIT_FILES for r in splits[n]]
        return Task(name=path.name, schema=schema, records=records, fixed_splits=splits, warnings=warnings)
    if path.is_file() and name_or_path not in task_names():
        raise AarlabError(
            f"{name_or_path}: is a file, not a task directory (a task directory holds "
            f"{', '.join(f + '.jsonl' for f in SPLIT_FILES)})"
        )
    if ("/" in name_or_path or name_or_path.startswith(".")) and not path.exists():
        raise AarlabError(f"{name_or_path}: no such task directory")
    spec = get_spec(name_or_path)
    cache = _pool_path(spec)
    if cache.is_file() and not rebuild:
        schema, records = read_jsonl(cache, spec.schema)
    else:
        records = spec.build()
        if not records:
            raise AarlabError(f"task {spec.name!r} built no records")
        write_jsonl(cache, records)
    return Task(name=spec.name, schema=spec.schema, records=records, spec=spec)


def module_dir(name: str) -> Path | None:
    """The folder of an importable module or package (None when it is not installed)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin).resolve().parent


def ground_truth_locations(*task_dirs: str | Path) -> list[Path]:
    """Every place on this machine that holds labels a method must never see: the packages every
    built-in task is built from (all tasks, not only the one being run: a gate suite or a later task may
    use another), the local cache of built pools and experiments under ``AARLAB_HOME``, and the given
    labelled task directories. The one answer to "where does ground truth live" for verification, the
    transfer gate and the agents' shell."""
    settings = get_settings()
    # the tasks' shipped data (e.g. the hand-audited labels of the CHAMP matcher) lives beside them
    out = {settings.data_cache.resolve(), settings.experiment_cache.resolve(), _DATA_DIR.resolve()}
    out.update(_module_dirs(tuple(sorted({m for spec in TASKS.values() for m in spec.source_modules}))))
    out.update(Path(t).resolve() for t in task_dirs)
    return sorted(out)


@functools.cache
def _module_dirs(modules: tuple[str, ...]) -> tuple[Path, ...]:
    """The folders of the installed ``modules`` (looked up once per process and set of modules: a newly
    registered task changes the key, so the answer never goes stale)."""
    return tuple(d for d in map(module_dir, modules) if d is not None)


_DATA_DIR = Path(__file__).parent / "data"


def ground_truth_modules() -> list[str]:
    """The top-level modules every built-in task is built from (importing one inside a verified run is
    evidence that a method went looking for labels)."""
    return sorted({m.split(".", 1)[0] for spec in TASKS.values() for m in spec.source_modules})
