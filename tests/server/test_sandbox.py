"""The data directory (secret, partition, opaque ids), the label-free sandbox bundle, the bundle runner,
and the server CLI commands."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aarlab.cli import app as cli_app
from aarlab.server.datadir import init_task, load_eval_task, read_secret, task_dir
from aarlab.testbed.bundle import load_bundle, run_on_bundle
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.loader import read_jsonl

TASK = "tiny-cities"


@pytest.fixture(scope="module")
def bundle(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aarlab.server.sandbox import export_sandbox

    return export_sandbox(data_dir, TASK, tmp_path_factory.mktemp("bundle") / "b")


def test_secret_is_private_and_the_partition_is_fixed_by_entity(data_dir, reference_dir, tmp_path):
    assert stat.S_IMODE((data_dir / "secret").stat().st_mode) == 0o600
    a, b = load_eval_task(data_dir, TASK), load_eval_task(data_dir, TASK)
    assert [i.id for i in a.dev.items] == [i.id for i in b.dev.items]
    dev_entities = {i.entity for i in a.dev.items}
    assert dev_entities and dev_entities.isdisjoint({i.entity for i in a.sealed.items})
    assert 0.3 < len(a.dev) / (len(a.dev) + len(a.sealed)) < 0.7
    other = tmp_path / "other"
    init_task(other, str(reference_dir), name=TASK)  # another server, another secret
    c = load_eval_task(other, TASK)
    assert {i.texts for i in c.dev.items} != {i.texts for i in a.dev.items}
    with pytest.raises(AarlabError, match="already exists"):
        init_task(other, str(reference_dir), name=TASK)


def test_the_data_directory_is_the_owners_alone(reference_dir):
    """Labels (``tasks/*/test.jsonl``), the database and the code store are written with the umask's
    mode (0644): another user of the host must not get past the directory itself, even where the
    operator made it readable to all (``mkdir D`` under a 022 umask)."""
    base = Path(tempfile.mkdtemp(prefix="aarlab-perm-"))
    try:
        base.chmod(0o755)
        data = base / "D"
        data.mkdir(mode=0o755)
        init_task(data, str(reference_dir), name=TASK)
        assert stat.S_IMODE(data.stat().st_mode) & 0o077 == 0
        labels = next(data.glob("tasks/*/test.jsonl"))
        assert '"label"' in labels.read_text()
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv:  # an unprivileged uid of the host cannot read the labels
            other = subprocess.run(
                [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(labels)],
                capture_output=True,
            )
            assert other.returncode != 0 and b"label" not in other.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_item_ids_are_opaque_and_records_unordered(data_dir, reference_dir):
    _, original = read_jsonl(reference_dir / "test.jsonl")
    _, stored = read_jsonl(task_dir(data_dir, TASK) / "test.jsonl")
    assert {r.id for r in original}.isdisjoint({r.id for r in stored})
    assert [r.id for r in stored] == sorted(r.id or "" for r in stored)
    assert {(r.question, r.choice, r.label) for r in original} == {  # type: ignore[union-attr]
        (r.question, r.choice, r.label)
        for r in stored  # type: ignore[union-attr]
    }


def test_bundle_holds_no_label_secret_sealed_or_teacher_training_item(bundle, data_dir):
    t = load_eval_task(data_dir, TASK)
    secret_hex = read_secret(data_dir).hex()
    _, train_label = read_jsonl(task_dir(data_dir, TASK) / "train_label.jsonl")
    forbidden_ids = [i.id for i in t.sealed.items] + [r.id or "" for r in train_label]
    forbidden_texts = {tx for i in t.sealed.items for tx in i.texts}
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert {p.name for p in files} == {
        "manifest.json",
        "train_unlabel.jsonl",
        "dev.jsonl",
        "weak_labels.json",
        "strong_features.npy",  # the student's features for unlabeled + dev inputs (no label)
        "strong_prior.npy",
    }
    for p in files:
        blob = p.read_bytes()
        assert b'"label"' not in blob, p
        assert secret_hex.encode() not in blob and read_secret(data_dir) not in blob, p
        for i in forbidden_ids:
            assert i.encode() not in blob, (p, i)
        if p.suffix == ".npy":
            continue
        text = blob.decode()
        for line in text.splitlines():
            if p.suffix == ".jsonl":
                rec = json.loads(line)
                assert f"{rec['question']}\n{rec['choice']}" not in forbidden_texts
    b = load_bundle(bundle)
    assert b.dev.ids == [i.id for i in t.dev.items]
    assert len(b.weak) == len(b.unlabeled) and np.all((b.weak >= 0) & (b.weak <= 1))
    assert b.features is not None and b.prior is not None
    assert b.features.shape[0] == len(b.unlabeled) + len(b.dev) == b.prior.shape[0]


def test_bundle_runs_a_method_and_the_server_scores_it(bundle, make_agent, tmp_path):
    preds = run_on_bundle(bundle, "vanilla-soft")
    b = load_bundle(bundle)
    assert list(preds) == b.dev.ids and all(0 <= p <= 1 for p in preds.values())
    method = tmp_path / "mine"
    method.mkdir()
    (method / "method.py").write_text(
        "def run(ctx):\n    return ctx.strong.fit(ctx.unlabeled, ctx.weak.proba).predict_proba(ctx.test)\n"
    )
    mine = run_on_bundle(bundle, str(method))
    assert np.allclose(list(mine.values()), list(preds.values()), atol=1e-6)  # vanilla-soft == this
    fb = make_agent("alice").submit_dev(TASK, preds)
    assert fb.improved and 0.5 < fb.reported_score <= 1.0


def test_load_bundle_says_what_is_missing(tmp_path):
    with pytest.raises(AarlabError, match="manifest.json: missing"):
        load_bundle(tmp_path)


def test_cli_init_task_add_agent_and_export(reference_dir, tmp_path):
    runner = CliRunner()
    d = tmp_path / "srv"
    r = runner.invoke(cli_app, ["server", "init-task", "--data-dir", str(d), "--task", str(reference_dir)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["server", "init-task", "--data-dir", str(d), "--task", str(reference_dir)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(cli_app, ["admin", "add-agent", "bob", "--data-dir", str(d), "--role", "overseer"])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("aar_") and token not in (d / "server.db").read_bytes().decode("latin-1")
    r = runner.invoke(cli_app, ["admin", "add-agent", "bob", "--data-dir", str(d)])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(cli_app, ["admin", "add-agent", "eve", "--data-dir", str(d), "--role", "god"])
    assert r.exit_code == 2 and "unknown role" in r.output
    out = tmp_path / "bundle"
    r = runner.invoke(cli_app, ["export-sandbox", str(out), "--data-dir", str(d), "--task", TASK])
    assert r.exit_code == 0, r.output
    assert load_bundle(out).manifest["task"] == TASK
