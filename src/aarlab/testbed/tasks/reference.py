"""``reference-chat`` and ``reference-math``: the reference study's own kinds of data, shipped in the repo.

The two reference-format directories of ``data/reference/`` (built from Anthropic HH-RLHF harmless-base
and OpenAI grade-school-math model solutions; provenance in ``data/reference/PROVENANCE.md``) ship
gzip-compressed, unchanged line for line, so each file stays far below the repository's 3 MB rule:

- ``reference-chat`` (pairwise): ``{prompt, first, second, label: "A"|"B", consistency_id, subset}``:
  which of two final assistant replies did the human prefer? 2,139 pairs, one per group.
- ``reference-math`` (single): ``{question, choice, label, consistency_id, subset}``: is this model's
  solution to a GSM8K question correct? 5,276 solutions, 4 per question (group).

The records load through the same loader as any reference-format directory (``consistency_id`` becomes
the record's group and split entity; ``subset`` is kept as metadata). As built-in tasks they are split
per seed by group, in the usual 25 / 40 / 35 % shares, so no conversation or question is ever in two
splits; the shipped files' own split (also by group) is what ``aarlab baseline --task <dir>`` uses.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
from pathlib import Path

from aarlab.testbed.loader import SPLIT_FILES, read_task_dir
from aarlab.testbed.schema import Record, SchemaName
from aarlab.testbed.tasks.registry import TaskSpec, register_task

#: The shipped files. They hold labels: they lie under the tasks' data folder, which
#: ``registry.ground_truth_locations`` forbids to verified runs, gate suites and agents' shells.
DATA_DIR = Path(__file__).parent / "data" / "reference"
REFERENCE_SOURCE = {
    "chat": "Anthropic HH-RLHF harmless-base test split (MIT)",
    "math": "OpenAI grade-school-math example_model_solutions.jsonl (MIT)",
}


def shipped_files(kind: str) -> dict[str, Path]:
    """The three gzip-compressed split files of one shipped directory (``kind``: chat or math)."""
    return {n: DATA_DIR / kind / f"{n}.jsonl.gz" for n in SPLIT_FILES}


def read_shipped(kind: str) -> tuple[SchemaName, dict[str, list[Record]]]:
    """Decompress one shipped directory and read it with the reference-format loader.

    Returns (schema, records per split file). Raises :class:`~aarlab.testbed.errors.DataFormatError`
    (naming the file and line) if a shipped file is damaged.
    """
    with tempfile.TemporaryDirectory(prefix=f"aarlab-reference-{kind}-") as tmp:
        for name, src in shipped_files(kind).items():
            with gzip.open(src, "rb") as fin, (Path(tmp) / f"{name}.jsonl").open("wb") as fout:
                shutil.copyfileobj(fin, fout)
        return read_task_dir(Path(tmp))


def build_reference(kind: str) -> list[Record]:
    """The task pool: every record of the three shipped files (the pipeline re-splits it by group).

    Each record gets a stable id, a hash of (kind, group, subset, repeat number) (one solution per
    source model per question; one pair per conversation): the server keys its ids on them, so they must
    be unique across the whole pool (8 math solutions are word-for-word repeats of another model's
    solution to the same question), and they must not name the subset (the source model).
    """
    _, splits = read_shipped(kind)
    out: list[Record] = []
    seen: dict[str, int] = {}
    for rec in (r for n in SPLIT_FILES for r in splits[n]):
        base = f"{kind}:{rec.group}:{rec.subset}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        # hashed: the subset names the source model, which a method must not read off an item's id
        digest = hashlib.sha256(f"{base}:{k}".encode()).hexdigest()[:16]
        out.append(rec.model_copy(update={"id": f"{kind}-{digest}"}))
    return out


#: The reference study's pair through the lm backend (needs both models in the local HF cache and a GPU).
GPU_COMMAND = (
    "aarlab baseline --task {task} --backend lm --weak qwen1.5-0.5b-chat --strong qwen3-4b-base --seeds 5"
)
#: Measured with bench/reference_pairs.py (5 seeds, full task); the README's table has every pair tried.
CHAT_GAP_NOTE = (
    "no CPU pair with a resolvable gap: tfidf → minilm-l3 weak 0.592, ceiling 0.583 (5 seeds); best tried, "
    "tfidf → minilm-l6 on the replies alone, gap +0.046 (95% CI +0.015 to +0.079); every sentence encoder "
    "≈ 0.60; SmolLM2-135M states (all 2,139 pairs) too: minilm-l3 → smollm2-l12 gap +0.036 (95% CI +0.008 "
    "to +0.065), tfidf → smollm2-l9 +0.011, and each student trained on weak labels lands below its teacher"
)
MATH_GAP_NOTE = (
    "no CPU pair with a resolvable gap: tfidf → minilm-l3 gap +0.005 (95% CI −0.008 to +0.018), both at "
    "the majority rate (0.62); SmolLM2-135M states (layers 9-18, 400-question subsample) sit there too, "
    "ceiling 0.606 vs weak 0.621: small frozen models do not see whether a solution's arithmetic is right"
)
CHAT_HYPOTHESES = ("This reply is helpful and harmless.", "This reply is harmful or unhelpful.")
MATH_HYPOTHESES = ("This solution is correct.", "This solution is wrong.")


def register_reference(
    kind: str, description: str, schema: SchemaName, gap_note: str, hypotheses: tuple[str, str]
) -> TaskSpec:
    """Register ``reference-<kind>``: one shipped directory as a built-in task (CPU pair tfidf →
    minilm-l3, whose gap is inside seed noise: ``gap_note`` says so and ``gpu_command`` gives the GPU run)."""
    name = f"reference-{kind}"
    return register_task(
        TaskSpec(
            name=name,
            description=description,
            schema=schema,
            build=lambda: build_reference(kind),
            weak="tfidf",
            strong="minilm-l3",
            version="2",
            gap_note=gap_note,
            gpu_command=GPU_COMMAND.format(task=name),
            prior_hypotheses=hypotheses,
            source=REFERENCE_SOURCE[kind],
        )
    )


REFERENCE_CHAT = register_reference(
    "chat",
    "Which of two assistant replies did the human prefer (HH-RLHF harmless-base)? The reference "
    "study's chat task, in its own format; split by conversation (consistency_id).",
    "pairwise",
    CHAT_GAP_NOTE,
    CHAT_HYPOTHESES,
)
REFERENCE_MATH = register_reference(
    "math",
    "Is this model's solution to a grade-school math question correct (GSM8K, 4 solutions per "
    "question)? The reference study's math task, in its own format; split by question.",
    "single",
    MATH_GAP_NOTE,
    MATH_HYPOTHESES,
)
