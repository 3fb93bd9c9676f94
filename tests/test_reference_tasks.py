"""The reference release's own data format and the two built-in reference tasks (chat, math).

- Reference-format records load unchanged: ``consistency_id`` becomes the group (and split entity),
  ``subset`` is accepted; the shared directories in ``../shared/data/reference-format`` load as they are.
- The shipped data (gzip inside the package) is intact: every file under 3 MB, the documented sizes,
  no group in two splits, and the per-seed built-in split keeps groups whole.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from aarlab.testbed.errors import DataFormatError
from aarlab.testbed.loader import SPLIT_FILES, read_jsonl, read_task_dir
from aarlab.testbed.schema import PairwiseRecord, SingleRecord
from aarlab.testbed.tasks import get_spec, load_task, task_names
from aarlab.testbed.tasks.reference import DATA_DIR, read_shipped, shipped_files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-format"

#: PROVENANCE.md: (label, unlabel, test) records per shipped directory.
SIZES = {"chat": (543, 861, 735), "math": (1320, 2108, 1848)}


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _math_row(i: int, cid: int, label: bool) -> dict[str, object]:
    return {"question": f"q{cid}", "choice": f"s{i}", "label": label, "consistency_id": cid,
            "subset": "6b_finetuning"}


def test_consistency_id_becomes_group_and_subset_is_kept():
    rec = SingleRecord.model_validate(_math_row(0, 7, True))
    assert rec.group == "7" and rec.subset == "6b_finetuning"
    pair = PairwiseRecord.model_validate(
        {"prompt": "p", "first": "a", "second": "b", "label": "B", "consistency_id": "c-1",
         "subset": "harmless-base"}
    )
    assert pair.group == "c-1" and pair.subset == "harmless-base"
    # group and consistency_id that agree are fine; disagreeing ones are an error naming both
    assert SingleRecord.model_validate({**_math_row(0, 3, True), "group": "3"}).group == "3"
    with pytest.raises(ValueError, match="disagree"):
        SingleRecord.model_validate({**_math_row(0, 3, True), "group": "4"})


def test_reference_dir_splits_by_consistency_id(tmp_path):
    # two groups of four solutions in each split file: groups must survive loading and seeded re-splits
    for k, name in enumerate(SPLIT_FILES):
        _write(tmp_path / f"{name}.jsonl",
               [_math_row(i, 10 * k + i // 4, i % 4 == 0) for i in range(8)])
    schema, splits = read_task_dir(tmp_path)
    assert schema == "single"
    assert {r.group for r in splits["test"]} == {"20", "21"}
    task = load_task(str(tmp_path))
    items = task.split(0).test.items
    assert [it.group for it in items] == ["20"] * 4 + ["21"] * 4
    assert {it.entity for it in items} == {"20", "21"}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [({"consistency_id": [1]}, "consistency_id"), ({"subset": 3}, "subset"), ({"subsett": "x"}, "subsett")],
)
def test_reference_field_typos_and_types_fail_clearly(tmp_path, bad, expected):
    path = tmp_path / "test.jsonl"
    _write(path, [{**_math_row(0, 1, True), **bad}])
    with pytest.raises(DataFormatError, match=expected) as err:
        read_jsonl(path)
    assert "test.jsonl:1" in str(err.value)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared reference-format data is not on this machine")
@pytest.mark.parametrize("kind", ["chat", "math"])
def test_shared_reference_dirs_load_unchanged(kind):
    task = load_task(str(SHARED / kind))
    assert task.schema == ("pairwise" if kind == "chat" else "single")
    s = task.split(0)
    assert (len(s.train_label), len(s.train_unlabel), len(s.test)) == SIZES[kind]
    groups = [{it.group for it in part.items} for part in (s.train_label, s.train_unlabel, s.test)]
    assert all(g and None not in g for g in groups)
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


@pytest.mark.parametrize("kind", ["chat", "math"])
def test_shipped_data_integrity(kind):
    files = shipped_files(kind)
    for path in files.values():
        assert path.is_file() and path.stat().st_size < 3_000_000
    schema, splits = read_shipped(kind)
    assert schema == ("pairwise" if kind == "chat" else "single")
    assert tuple(len(splits[n]) for n in SPLIT_FILES) == SIZES[kind]
    assert all(r.label is not None and r.group is not None and r.subset for n in SPLIT_FILES
               for r in splits[n])
    groups = [{r.group for r in splits[n]} for n in SPLIT_FILES]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    if kind == "math":  # 4 solutions per question, all of one question in one group
        for n in SPLIT_FILES:
            by_group: dict[str | None, set[str]] = {}
            for r in splits[n]:
                assert isinstance(r, SingleRecord)
                by_group.setdefault(r.group, set()).add(r.question)
            assert all(len(q) == 1 for q in by_group.values())
    if SHARED.is_dir():  # byte-for-byte the shared files
        for name, path in files.items():
            assert gzip.decompress(path.read_bytes()) == (SHARED / kind / f"{name}.jsonl").read_bytes()


@pytest.mark.parametrize(("name", "schema"), [("reference-chat", "pairwise"), ("reference-math", "single")])
def test_builtin_reference_tasks_split_by_group(name, schema):
    assert name in task_names()
    spec = get_spec(name)
    assert spec.schema == schema
    assert Path(DATA_DIR).is_dir()
    task = load_task(name)
    for seed in (0, 1):
        s = task.split(seed)
        parts = (s.train_label, s.train_unlabel, s.test)
        groups = [{it.group for it in p.items} for p in parts]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
        assert sum(len(p) for p in parts) == len(task.records)
        shares = [len(p) / len(task.records) for p in parts]
        assert shares == pytest.approx([0.25, 0.40, 0.35], abs=0.02)
    assert task.split(0).test.items != task.split(1).test.items
    # ids are unique over the pool and across one seed's splits (the server keys its ids on them)
    assert len({r.id for r in task.records}) == len(task.records)
    s0 = task.split(0)
    ids = [it.id for part in (s0.train_label, s0.train_unlabel, s0.test) for it in part.items]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", ["reference-chat", "reference-math"])
def test_server_init_task_takes_the_builtin_reference_tasks(tmp_path, name):
    from aarlab.server.datadir import init_task

    out = init_task(tmp_path / "data", name)
    counts = [sum(1 for _ in (out / f"{n}.jsonl").open()) for n in SPLIT_FILES]
    assert sum(counts) == len(load_task(name).records)


def test_final_answer_and_answer_consistency():
    from aarlab.testbed.methods.blocks import answer_consistent, final_answer

    assert final_answer("He made 80,000+50,000=$130,000\nA: 1,200.0") == "1200"
    assert final_answer("So 3.50 dollars\nA: 3.5") == "3.5"
    assert final_answer("no number here") is None
    texts = [("q 12\nx=5\nA: 5",), ("q 12\nA: 5",), ("q 12\nA: 7",), ("q 12\nno answer",), ("q 3\nA: 1",)]
    groups = ["g", "g", "g", "g", "h"]
    p = np.array([0.9, 0.5, 0.6, 0.3, 0.8])
    out = answer_consistent(p, texts, groups)
    # the two "5" solutions share their mean; "7" is capped at 1 - 0.7; no-number and singletons unchanged
    assert out.tolist() == pytest.approx([0.7, 0.7, 0.3, 0.3, 0.8])


def _subsample_task(name: str, groups: int):  # type: ignore[no-untyped-def]
    from aarlab.testbed.tasks import Task

    full = load_task(name)
    keys = sorted({r.group for r in full.records}, key=lambda g: int(g or 0))[:groups]
    keep = set(keys)
    recs = [r for r in full.records if r.group in keep]
    return Task(name=f"{name}-sub{groups}", schema=full.schema, records=recs, spec=full.spec)


@pytest.mark.parametrize(("name", "groups"), [("reference-math", 40), ("reference-chat", 80)])
def test_default_pair_on_a_subsample(name, groups):
    """The task's default CPU pair runs end to end on a small subsample: teacher and ceiling are real
    probes (accuracies in a sane band, predictions vary), and with no resolvable gap no PGR is given."""
    from aarlab.testbed.pipeline import run_experiment

    task = _subsample_task(name, groups)
    spec = get_spec(name)
    r = run_experiment(task, "vanilla", seeds=2, show_progress=False).to_json()
    assert (r["weak"], r["strong"]) == (spec.weak, spec.strong)
    for key in ("weak_acc", "ceiling_acc", "transfer_acc"):
        assert 0.35 <= r[key] <= 0.85, (key, r[key])
    if not r["gap_resolvable"]:
        assert r["pgr"] is None and "no PGR" in r["note"]
    res = run_experiment(task, "prior-consistency", seeds=1, show_progress=False,
                         config={"consistency": "answer" if name == "reference-math" else "exclusive"})
    assert len(res.predictions[0].transfer) == len(res.predictions[0].labels)


def test_gap_notes_name_the_gpu_path(tmp_path):
    from aarlab.cli.baseline import task_gap_notes

    for name in ("reference-chat", "reference-math"):
        spec = get_spec(name)
        assert spec.gap_note and spec.gpu_command and "--backend lm" in spec.gpu_command
        lines = task_gap_notes(name, "embed")
        assert any("qwen3-4b-base" in line and name in line for line in lines)
        assert task_gap_notes(name, "lm") == []
    # a reference-format directory (a held-out task of the same kind) gets the same command
    lines = task_gap_notes(str(tmp_path), "embed")
    assert any(str(tmp_path) in line and "--backend lm" in line for line in lines)


def test_shipped_labels_are_forbidden_to_sandboxed_code():
    from aarlab.testbed.tasks.registry import ground_truth_locations, ground_truth_modules

    forbidden = ground_truth_locations()
    assert any(DATA_DIR.resolve().is_relative_to(p) for p in forbidden)
    assert "aarlab" not in ground_truth_modules()  # importing aarlab itself is never evidence


def test_demo_task_is_checked_before_anything_starts(tmp_path):
    from aarlab.lab.demo import run_demo
    from aarlab.testbed.errors import AarlabError

    with pytest.raises(AarlabError, match="unknown task 'reference-maths'"):
        run_demo(quick=True, task="reference-maths", run_dir=tmp_path)
