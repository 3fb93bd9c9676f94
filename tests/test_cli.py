"""The CLI: JSON output contract, tables, and clear errors with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.testbed.loader import write_jsonl
from aarlab.testbed.tasks import split_by_entity

runner = CliRunner()


def _tiny_dir(tmp_path, tiny_task):  # type: ignore[no-untyped-def]
    parts = split_by_entity(tiny_task.records, (0.25, 0.4, 0.35), 0)
    for name, recs in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
        write_jsonl(tmp_path / f"{name}.jsonl", recs)
    return tmp_path


def test_baseline_json_on_a_reference_dir(tmp_path, tiny_task):
    d = _tiny_dir(tmp_path / "tiny", tiny_task)
    res = runner.invoke(
        app,
        [
            "baseline",
            "--task",
            str(d),
            "--method",
            "vanilla",
            "--seeds",
            "2",
            "--weak",
            "minilm-l3",
            "--strong",
            "minilm-l6",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    for key in (
        "task",
        "method",
        "weak",
        "strong",
        "seeds",
        "weak_acc",
        "ceiling_acc",
        "transfer_acc",
        "pgr",
        "pgr_ci",
        "seconds",
    ):
        assert key in data
    assert data["seeds"] == 2 and data["weak"] == "minilm-l3" and data["strong"] == "minilm-l6"
    assert data["pgr_ci"] is None or len(data["pgr_ci"]) == 2


def test_errors_are_one_clear_line(tmp_path):
    res = runner.invoke(app, ["baseline", "--task", "no-such-task", "--json"])
    assert res.exit_code == 2
    assert "unknown task 'no-such-task'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["baseline", "--method", "confident", "--config", "{bad"])
    assert res.exit_code == 2 and "--config is not valid JSON" in res.output
    res = runner.invoke(app, ["baseline", "--method", "confident", "--config", '{"keep_fraction": 5}'])
    assert res.exit_code == 2 and "keep_fraction" in res.output
    res = runner.invoke(app, ["baseline", "--weak", "org/some-hub-model", "--json"])
    assert res.exit_code == 2 and "never downloads" in res.output


def test_lists(tmp_path):
    res = runner.invoke(app, ["encoders", "list"])
    assert res.exit_code == 0 and "mpnet" in res.output
    res = runner.invoke(app, ["methods", "list"])
    assert res.exit_code == 0 and "logconf" in res.output


def test_tasks_export_roundtrip(tmp_path):
    res = runner.invoke(app, ["tasks", "export", "truth-cities", str(tmp_path / "tc")])
    assert res.exit_code == 0, res.output
    from aarlab.testbed.tasks import load_task

    t = load_task(str(tmp_path / "tc"))
    assert len(t.records) == 3320


def test_transfer_rejects_unknown_method_before_any_work():
    res = runner.invoke(app, ["transfer", "--method", "no-such-method", "--json"])
    assert res.exit_code == 2 and "unknown method 'no-such-method'" in res.output
