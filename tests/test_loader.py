"""Reference-format loading: good directories load, malformed input names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aarlab.testbed.errors import DataFormatError
from aarlab.testbed.loader import read_jsonl, read_task_dir
from aarlab.testbed.tasks import load_task


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _single(i: int, label: bool = True) -> dict[str, object]:
    return {"question": f"q{i}", "choice": f"c{i}", "label": label, "group": f"g{i // 2}"}


def _dir(tmp_path: Path, rows: dict[str, list[object]]) -> Path:
    for k, name in enumerate(("train_label", "train_unlabel", "test")):  # distinct records per split
        _write(tmp_path / f"{name}.jsonl", rows.get(name, [_single(4 * k), _single(4 * k + 2, False)]))
    return tmp_path


def test_loads_single_and_pairwise(tmp_path):
    d = _dir(tmp_path, {})
    schema, splits = read_task_dir(d)
    assert schema == "single" and len(splits["test"]) == 2
    task = load_task(str(d))
    s = task.split(0)
    assert len(s.train_label) == 2 and s.test.labels.tolist() == [True, False]

    p = tmp_path / "pairs.jsonl"
    _write(p, [{"prompt": "p", "first": "a", "second": "b", "label": "A"}])
    schema, recs = read_jsonl(p)
    assert schema == "pairwise" and recs[0].label == "A"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"question": "q", "choice": "c", "label": "maybe"}', "field 'label'"),
        ('{"question": "q", "choice": "c"}', "field 'label': missing"),
        ('{"question": "q", "choice": 3, "label": true}', "field 'choice'"),
        ('{"question": "q", "choice": "c", "label": true, "lable": 1}', "field 'lable'"),
        ('{"foo": 1}', "cannot tell the schema"),
        ('{"prompt": "p", "first": "a", "second": "b", "label": "C"}', "field 'label'"),
    ],
)
def test_malformed_lines_name_file_line_field(tmp_path, line, expected):
    first = {"prompt": "p", "first": "a", "second": "b", "label": "B"} if '"prompt"' in line else _single(0)
    path = _write(tmp_path / "test.jsonl", [first, line])
    with pytest.raises(DataFormatError) as err:
        read_jsonl(path)
    msg = str(err.value)
    assert f"{path}:2:" in msg
    assert expected in msg


def test_mixed_schema_and_empty_and_missing(tmp_path):
    path = _write(
        tmp_path / "mixed.jsonl", [_single(0), {"prompt": "p", "first": "a", "second": "b", "label": "A"}]
    )
    with pytest.raises(DataFormatError, match=r"mixed.jsonl:2: pairwise record in a single task"):
        read_jsonl(path)
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataFormatError, match="no records"):
        read_jsonl(empty)
    with pytest.raises(DataFormatError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_directory_missing_a_split(tmp_path):
    _write(tmp_path / "train_label.jsonl", [_single(0)])
    with pytest.raises(DataFormatError, match="train_unlabel.jsonl: file not found"):
        read_task_dir(tmp_path)


def test_labels_optional_for_sandbox_bundles(tmp_path):
    path = _write(tmp_path / "x.jsonl", [{"question": "q", "choice": "c"}])
    _, recs = read_jsonl(path, require_labels=False)
    assert recs[0].label is None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (json.dumps(_single(1)) + "," + json.dumps(_single(2)), "invalid JSON"),  # two objects, one line
        ("[" + json.dumps(_single(1)) + "]", "expected a JSON object"),
        (json.dumps({"prompt": "p", "first": "a", "second": "b", "label": "A"}), "pairwise record"),
        (json.dumps({"question": "q", "choice": "c"}), "field 'label': missing"),
        (json.dumps({**_single(1), "labl": True}), "labl"),
    ],
)
def test_the_one_call_reader_accepts_nothing_the_line_reader_refuses(tmp_path, line, why):
    """With the schema known, a file is validated in one call; anything off falls back to the line
    reader, which names the line: the fast path never accepts a file the line reader refuses."""
    path = _write(tmp_path / "x.jsonl", [_single(0), line, _single(3)])
    with pytest.raises(DataFormatError, match=f"x.jsonl:2: .*{why}"):
        read_jsonl(path, "single")


def test_the_one_call_reader_gives_the_line_readers_records(tmp_path):
    rows = [_single(i, i % 2 == 0) for i in range(50)] + [{"question": "é", "choice": "ü", "label": False}]
    path = _write(tmp_path / "x.jsonl", rows)
    fast = read_jsonl(path, "single")
    slow = read_jsonl(path)  # no schema given: line by line
    assert fast == slow and len(fast[1]) == 51
