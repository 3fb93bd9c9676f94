"""Red team: the agent's own links in its sandbox against the trusted side's file tools.

An MCP harness runs tool calls concurrently, so a confined shell loop of the agent can swap a folder
of its sandbox for a symbolic link between the moment a tool checks a path (``Toolbox.resolve``) and
the moment it uses it. A link's target is read by whoever follows it: the toolbox, outside the
sandbox, with the trusted process's rights. These tests make the swap happen exactly in that window
(the check is wrapped to swap right after it passes), so what a concurrent loop wins by chance
happens every time: packing a "method folder" must not read host files into a snapshot, unpacking a
snapshot must not write outside the sandbox, submit_dev must not read a host file.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aarlab.agents.tools import Toolbox
from aarlab.api.archive import pack_folder
from aarlab.server.app import create_app
from llm_replay import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("shell-race-world")
    settings, _ = make_world(root, with_task=False)
    app = create_app(settings)
    with TestClient(app) as tc:
        yield World(tc, settings.data_dir, root / "db", None, settings)
    app.state.aarlab.engine.dispose()


@pytest.fixture
def box(world: World, tmp_path: Path) -> Toolbox:
    client, _ = world.client(f"race-{tmp_path.name}"[:60])
    return Toolbox(client, sandbox=tmp_path / "sbx", state_dir=tmp_path / "state", task="no-such-task")


def _swap_after_check(box: Toolbox, monkeypatch: pytest.MonkeyPatch, folder: str, target: Path) -> None:
    """Right after the path check passes, the agent's loop replaces ``folder`` with a link to ``target``."""
    check = box.resolve

    def racing(path: str) -> Path:
        out = check(path)
        assert box.sandbox is not None
        shutil.rmtree(box.sandbox / folder)
        (box.sandbox / folder).symlink_to(target, target_is_directory=True)
        return out

    monkeypatch.setattr(box, "resolve", racing)


def test_packing_a_folder_never_reads_through_a_swapped_link(box, tmp_path, monkeypatch):
    host = tmp_path / "host-labels"
    (host / "m").mkdir(parents=True)
    (host / "m" / "method.py").write_text("def run(ctx): ...\n")
    (host / "m" / "test.jsonl").write_text('{"label": true}\n')  # what the server's data dir holds
    assert box.sandbox is not None
    (box.sandbox / "a" / "m").mkdir(parents=True)
    (box.sandbox / "a" / "m" / "method.py").write_text("def run(ctx): ...\n")
    _swap_after_check(box, monkeypatch, "a", host)
    out = box.call("code_put", {"folder": "a/m"})
    if not out.is_error:  # whatever was packed, it is not the host's file
        sha = out.text.split("snapshot ")[1].split()[0]
        data = box.client.get_snapshot(sha)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            names = tar.getnames()
        assert "test.jsonl" not in names, names
    assert "link" in out.text or not out.is_error, out.text


def test_unpacking_a_snapshot_never_writes_through_a_swapped_link(box, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "method.py").write_text("def run(ctx): ...\n")
    sha = box.client.put_snapshot(pack_folder(src)).sha256
    outside = tmp_path / "root-home"
    outside.mkdir()
    assert box.sandbox is not None
    (box.sandbox / "a").mkdir(parents=True)
    _swap_after_check(box, monkeypatch, "a", outside)
    out = box.call("code_get", {"sha": sha, "dest": "a/copy"})
    assert not (outside / "copy").exists(), out.text  # nothing written on the host
    assert out.is_error and "link" in out.text, out.text


def test_submit_dev_never_reads_through_a_swapped_link(box, tmp_path, monkeypatch):
    host = tmp_path / "host"
    host.mkdir()
    (host / "p.json").write_text('{"x": 1}')
    assert box.sandbox is not None
    (box.sandbox / "a").mkdir(parents=True)
    (box.sandbox / "a" / "p.json").write_text("{}")
    _swap_after_check(box, monkeypatch, "a", host)
    out = box.call("submit_dev", {"path": "a/p.json"})
    assert out.is_error and "link" in out.text, out.text


def test_unpacked_snapshots_still_belong_to_the_agent(box, tmp_path):
    src = tmp_path / "src2"
    (src / "pkg").mkdir(parents=True)
    (src / "method.py").write_text("def run(ctx): ...\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    sha = box.client.put_snapshot(pack_folder(src)).sha256
    out = box.call("code_get", {"sha": sha, "dest": "deep/er/copy"})
    assert not out.is_error, out.text
    assert box.sandbox is not None and box.runner is not None
    copy = box.sandbox / "deep" / "er" / "copy"
    assert (copy / "pkg" / "util.py").read_text() == "X = 1\n"
    if box.runner.namespaces:  # the agent's commands may change what it unpacked
        for p in (copy, copy / "pkg", copy / "pkg" / "util.py", box.sandbox / "deep"):
            assert p.stat().st_uid == box.runner.uid, p
    out = box.call(
        "run_shell", {"command": "echo hi >> deep/er/copy/pkg/util.py && cat deep/er/copy/pkg/util.py"}
    )
    assert not out.is_error and "hi" in out.text, out.text
