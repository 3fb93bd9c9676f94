"""``champ-math`` and ``champ-pairs``: is a model's final answer to a competition math problem right?

Built from ``champ-dataset`` 1.0.0 (MIT): 270 competition problems with reference answers and 19,440
conversations in which GPT-3.5, GPT-4, GPT-4 Turbo and PaLM 2 Medium solve them under 18 prompt settings,
each ending in a one-sentence summary of the final answer. The dataset ships no correctness labels, so
:mod:`aarlab.testbed.tasks.champ_matcher` derives them (numeric and Yes/No references only; unclear
summaries are dropped) and a hand audit (``data/champ_audit.jsonl``, ``scripts/champ_audit.py``) checks
them.

- ``champ-math`` (single): question = problem, choice = the model's summary, label = matcher verdict. At
  most ``max_per_problem`` conversations per problem, drawn with a fixed seed so the encoding cost stays
  bounded. Duplicate summaries are kept on purpose: "the most common final answer of a problem is
  right" is a known shortcut (RECIPES.md: 0.82 accuracy vs. ~0.6 for frozen encoders), and a platform
  for reward-hacking studies must be able to show it.
- ``champ-pairs`` (pairwise): a correct and an incorrect summary of the same problem, in an order drawn
  with a fixed seed; label ``"A"`` when the first is the correct one.

Both split by problem (``entity``), so no problem is in two splits.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aarlab.testbed.schema import PairwiseRecord, Record, SingleRecord
from aarlab.testbed.tasks.champ_matcher import match_answer, parse_reference
from aarlab.testbed.tasks.registry import TaskSpec, register_task

#: Per-problem cap for ``champ-math``: 181 of the 186 labelled problems have at least 16 labelled
#: conversations, so the pool is 2,959 records (encoding stays bounded).
MAX_PER_PROBLEM = 16
#: Per-problem cap for ``champ-pairs``: 169 problems have both a correct and an incorrect summary,
#: giving 1,993 pairs.
MAX_PAIRS_PER_PROBLEM = 12
SEED = 0

CHAMP_HYPOTHESES = ("The final answer is correct.", "The final answer is incorrect.")
CHAMP_SOURCE = "champ-dataset 1.0.0 (MIT)"


@dataclass(frozen=True, slots=True)
class JudgedAnswer:
    """One conversation's final-answer summary with the matcher's verdict."""

    id: str
    problem_id: str
    model: str
    setting: str
    problem: str
    reference: str
    summary: str
    label: bool


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def conversation_id(problem_id: str, model: str, setting: str) -> str:
    """Stable record id, e.g. ``champ-P_Combinatorics_1-gpt-4-turbo-no-c-w-o-h``."""
    return f"champ-{problem_id}-{_slug(model)}-{_slug(setting)}"


def _rank(seed: int, key: str) -> str:
    """A per-item pseudo-random sort key: the order of one problem's items never depends on others."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Conversation:
    """One CHAMP conversation reduced to what the matcher needs."""

    id: str
    problem_id: str
    model: str
    setting: str
    problem: str
    reference: str
    summary: str


@lru_cache(maxsize=1)
def conversations() -> tuple[Conversation, ...]:
    """Every conversation of a problem with an in-scope reference that ends in a summary (cached).

    Conversations whose summary was cut by the model's length limit have no text and are skipped.
    """
    import champ_dataset

    dataset = champ_dataset.load("v0")
    out: list[Conversation] = []
    for pid, prob in dataset.problems.items():
        if parse_reference(prob.answer) is None:
            continue
        for key, conv in prob.conversations.items():
            final = conv.messages[-1] if conv.messages else None
            if final is None or not final.role.startswith("Model") or not final.text:
                continue
            model, setting = key.split("|", 1)
            out.append(
                Conversation(
                    id=conversation_id(pid, model, setting),
                    problem_id=pid,
                    model=model,
                    setting=setting,
                    problem=prob.text,
                    reference=prob.answer,
                    summary=final.text.strip(),
                )
            )
    return tuple(out)


@lru_cache(maxsize=4)
def judged_answers(problems: int | None = None) -> tuple[JudgedAnswer, ...]:
    """Every conversation the matcher can label, in dataset order.

    ``problems`` keeps only the first that many problems with an in-scope reference (dataset order),
    for quick tests.
    """
    out: list[JudgedAnswer] = []
    seen: list[str] = []
    for c in conversations():
        if not seen or seen[-1] != c.problem_id:
            if problems is not None and len(seen) >= problems:
                break
            seen.append(c.problem_id)
        label = match_answer(c.reference, c.problem, c.summary)
        if label is None:
            continue
        out.append(
            JudgedAnswer(
                id=c.id,
                problem_id=c.problem_id,
                model=c.model,
                setting=c.setting,
                problem=c.problem,
                reference=c.reference,
                summary=c.summary,
                label=label,
            )
        )
    return tuple(out)


def _by_problem(answers: tuple[JudgedAnswer, ...]) -> dict[str, list[JudgedAnswer]]:
    groups: dict[str, list[JudgedAnswer]] = {}
    for a in answers:
        groups.setdefault(a.problem_id, []).append(a)
    return groups


def build_champ_math(
    max_per_problem: int = MAX_PER_PROBLEM, problems: int | None = None, seed: int = SEED
) -> list[Record]:
    """The ``champ-math`` pool: at most ``max_per_problem`` labelled summaries per problem.

    The subsample is a seeded hash order within each problem, so it is deterministic and a problem's
    records do not change when others are added or dropped. Duplicate summaries are not merged.
    """
    records: list[Record] = []
    for pid, answers in _by_problem(judged_answers(problems)).items():
        chosen = sorted(answers, key=lambda a: _rank(seed, a.id))[:max_per_problem]
        for a in sorted(chosen, key=lambda a: a.id):
            records.append(
                SingleRecord(
                    question=a.problem, choice=a.summary, label=a.label, group=pid, entity=pid, id=a.id
                )
            )
    return records


def build_champ_pairs(
    max_pairs_per_problem: int = MAX_PAIRS_PER_PROBLEM, problems: int | None = None, seed: int = SEED
) -> list[Record]:
    """The ``champ-pairs`` pool: (correct, incorrect) summaries of one problem, order drawn by seed.

    For each problem with both kinds, all (correct, incorrect) combinations with distinct texts are
    ranked by a seeded hash and the first ``max_pairs_per_problem`` kept; a second hash decides which
    side comes first, so the label is ``"A"`` about half the time and carries no position signal.
    """
    records: list[Record] = []
    for pid, answers in _by_problem(judged_answers(problems)).items():
        good = [a for a in answers if a.label]
        bad = [a for a in answers if not a.label]
        seen: set[tuple[str, str]] = set()
        combos = sorted(((g, b) for g in good for b in bad), key=lambda gb: _rank(seed, gb[0].id + gb[1].id))
        kept = 0
        for g, b in combos:
            if kept >= max_pairs_per_problem:
                break
            texts = (g.summary, b.summary)
            if texts in seen:
                continue
            seen.add(texts)
            kept += 1
            correct_first = int(_rank(seed + 1, g.id + b.id)[:8], 16) % 2 == 0
            first, second = (g, b) if correct_first else (b, g)
            records.append(
                PairwiseRecord(
                    prompt=g.problem,
                    first=first.summary,
                    second=second.summary,
                    label="A" if correct_first else "B",
                    group=pid,
                    entity=pid,
                    id=f"champ-pair-{first.id.removeprefix('champ-')}--{second.id.removeprefix('champ-')}",
                )
            )
    return records


AUDIT_PATH = Path(__file__).parent / "data" / "champ_audit.jsonl"


@dataclass(frozen=True)
class AuditResult:
    """Agreement of the current matcher with the hand labels of the audit file.

    ``rate`` is over the audited answers the matcher still labels; ``strict_rate`` counts an answer it
    now abstains on as a disagreement, so a matcher cannot raise its score by abstaining.
    """

    n: int
    labelled: int
    agree: int
    disagreements: tuple[dict[str, object], ...]
    abstained: tuple[dict[str, object], ...]

    @property
    def rate(self) -> float:
        return self.agree / self.labelled if self.labelled else float("nan")

    @property
    def strict_rate(self) -> float:
        return self.agree / self.n if self.n else float("nan")


def load_audit(path: Path = AUDIT_PATH) -> list[dict[str, object]]:
    """The hand-labelled audit rows (one JSON object per line)."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def audit_agreement(path: Path = AUDIT_PATH) -> AuditResult:
    """Re-run the current matcher on every audited conversation (by id) and compare with the hand label.

    The summary is looked up in the dataset by id, not read back from the audit file, so the check
    follows the data the task is built from; a row whose stored sentence no longer matches is an error.
    """
    by_id = {c.id: c for c in conversations()}
    rows = load_audit(path)
    agree = 0
    labelled = 0
    disagreements: list[dict[str, object]] = []
    abstained: list[dict[str, object]] = []
    for row in rows:
        conv = by_id.get(str(row["id"]))
        if conv is None:
            raise ValueError(f"audit id {row['id']!r} is not a conversation of an in-scope problem")
        if conv.summary != str(row["final_sentence"]).strip():
            raise ValueError(f"audit id {row['id']!r}: stored final_sentence differs from the dataset")
        verdict = match_answer(conv.reference, conv.problem, conv.summary)
        if verdict is None:
            abstained.append(row)
            continue
        labelled += 1
        if verdict == row["human_label"]:
            agree += 1
        else:
            disagreements.append({**row, "matcher_now": verdict})
    return AuditResult(len(rows), labelled, agree, tuple(disagreements), tuple(abstained))


register_task(
    TaskSpec(
        name="champ-math",
        description=(
            "Is a model's one-sentence final answer to a competition math problem correct? CHAMP "
            "conversations (GPT-3.5/4/4 Turbo, PaLM 2), labelled by matching numeric and Yes/No "
            "reference answers; split by problem."
        ),
        schema="single",
        build=build_champ_math,
        weak="minilm-l3",
        strong="mpnet",
        version="1",
        gap_note=(
            "not resolvable: ceiling − weak = +0.037 (95% CI −0.010 to +0.091), minilm-l3 → mpnet, 5 seeds; "
            "frozen encoders see the answer's author, not its correctness"
        ),
        prior_hypotheses=CHAMP_HYPOTHESES,
        source=CHAMP_SOURCE,
        source_modules=("champ_dataset",),
    )
)

register_task(
    TaskSpec(
        name="champ-pairs",
        description=(
            "Which of two final answers to the same competition math problem is the correct one? "
            "Pairs of CHAMP summaries (one correct, one incorrect); split by problem."
        ),
        schema="pairwise",
        build=build_champ_pairs,
        weak="minilm-l3",
        strong="mpnet",
        version="1",
        gap_note="not resolvable: ceiling − weak = −0.032 (95% CI −0.095 to +0.022), minilm-l3 → mpnet",
        prior_hypotheses=CHAMP_HYPOTHESES,
        source=CHAMP_SOURCE,
        source_modules=("champ_dataset",),
    )
)
