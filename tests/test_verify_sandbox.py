"""The verification sandbox: confinement, audit evidence, limits, and clear failure reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from aarlab.sandbox import Bind
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import SANDBOX, Limits, run_sandboxed

SECRET_DIR_NAME = "server-data"


@pytest.fixture()
def setup(tmp_path):  # type: ignore[no-untyped-def]
    secret_dir = tmp_path / SECRET_DIR_NAME
    secret_dir.mkdir()
    (secret_dir / "labels.jsonl").write_text('{"id": "x", "label": true}\n')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "notes.txt").write_text("hello")
    work = tmp_path / "sandbox"
    work.mkdir()
    policy = AuditPolicy(
        sandbox=SANDBOX,
        read_roots=[r for r in default_read_roots() if not str(tmp_path).startswith(r)],
        forbidden_roots=[str(secret_dir)],
        dataset_texts=["def add(a, b):\n    return a + b\n"],
    )
    return work, policy, secret_dir, outside


def _run(entry: str, work: Path, policy: AuditPolicy, limits: Limits | None = None, **kwargs):  # type: ignore[no-untyped-def]
    return run_sandboxed(
        f"aarlab.verify.probes:{entry}",
        kwargs,
        binds=(Bind(work, f"{SANDBOX}/method"),),
        policy=policy,
        limits=limits or Limits(wall_s=60),
    )


def test_plumbing(setup):
    work, policy, *_ = setup
    out = _run("echo", work, policy, value={"a": [1, 2]})
    assert out.status == "ok" and out.result == {"a": [1, 2]}


def test_forbidden_path_is_blocked_and_recorded(setup):
    """The server's data is not in the sandbox's root at all; the attempt is still evidence."""
    work, policy, secret_dir, _ = setup
    out = _run("read_file", work, policy, path=str(secret_dir / "labels.jsonl"))
    assert out.status == "error" and out.reason == "the method raised an exception"
    assert "PermissionError" in out.detail and "labels" not in out.reason
    assert any(e["event"] == "forbidden_open" and SECRET_DIR_NAME in e["path"] for e in out.events)


def test_host_files_outside_the_binds_do_not_exist(setup):
    work, policy, _, outside = setup
    out = _run("read_file", work, policy, path=str(outside / "notes.txt"))
    assert out.status == "error" and "FileNotFoundError" in out.detail
    assert any(e["event"] == "open_outside_sandbox" for e in out.events)
    mine = _run("read_file", work, policy, path=f"{SANDBOX}/method/../method")
    assert mine.status == "error"  # a folder, but visible: IsADirectoryError, not FileNotFoundError
    assert "IsADirectoryError" in mine.detail


def test_environment_is_scrubbed(setup, monkeypatch):
    work, policy, *_ = setup
    monkeypatch.setenv("AARLAB_SERVER_SECRET", "s3cr3t")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x")
    out = _run("env", work, policy)
    assert out.status == "ok"
    assert "AARLAB_SERVER_SECRET" not in out.result and "DATABASE_URL" not in out.result
    assert "s3cr3t" not in str(out.result)


def test_network_and_subprocess_are_blocked(setup):
    work, policy, *_ = setup
    net = _run("connect", work, policy)
    assert net.status == "error"
    assert any(e["event"] == "network" for e in net.events)
    sub = _run("spawn", work, policy)
    assert sub.status == "error" and "not allowed" in sub.detail
    assert any(e["event"] == "subprocess" for e in sub.events)


def test_exec_of_dataset_text_is_recorded(setup):
    work, policy, *_ = setup
    out = _run("exec_text", work, policy, source="def add(a, b):\n    return a + b\n")
    assert out.status == "ok" and out.result == ["add"]
    assert any(e["event"] == "exec_dataset_text" for e in out.events)
    clean = _run("exec_text", work, policy, source="def mul(a, b):\n    return a * b * 1\n")
    assert not any(e["event"] == "exec_dataset_text" for e in clean.events)


def test_timeout_kills_and_says_so(setup):
    work, policy, *_ = setup
    out = _run("burn_cpu", work, policy, limits=Limits(wall_s=3), seconds=60)
    assert out.status == "timeout" and "wall-clock limit" in out.reason
    assert out.seconds < 20


def test_memory_limit(setup):
    work, policy, *_ = setup
    out = _run("allocate", work, policy, limits=Limits(wall_s=60, memory_mb=600), mb=2000)
    assert out.status in {"error", "killed"}
    assert "memory" in out.reason


def test_network_namespace_has_only_loopback(setup):
    work, policy, *_ = setup
    inside = _run("interfaces", work, policy)
    assert inside.status == "ok" and inside.result == ["lo"]
