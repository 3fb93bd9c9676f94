"""Every page a confined run makes the host hold counts against ``Limits.memory_mb`` (a memory cgroup per
run, ``aarlab.sandbox.cgroup``), on the zygote path and the exec path alike.

The red-team hole (tests/REDTEAM_HOLES.md, "Memory limit escaped with memfd"): a run limited to 400 MB
held 1.2-1.5 GB of host RAM in memfds or tmpfs files and ended ``ok``, because ``RLIMIT_AS`` counts only
the address space. Each reproducer here writes 3x the limit and must end ``killed`` for memory."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from aarlab.sandbox import Limits, cgroup
from aarlab.sandbox import zygote_client as zc
from aarlab.sandbox.namespaces import namespace_support
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import SANDBOX, SandboxOutcome, run_sandboxed

pytestmark = pytest.mark.skipif(bool(namespace_support()), reason="kernel confinement unavailable")

LIMIT_MB = 400
PATHS = ("zygote", "exec")


@pytest.fixture(scope="module", autouse=True)
def one_zygote():
    """One zygote for the module (each run is then ~0.1-0.5 s); a fresh one after."""
    zc.shutdown()
    yield
    zc.shutdown()


@pytest.fixture(params=PATHS)
def path(request, monkeypatch) -> str:
    """Run on the zygote path (default) or the exec path (``AARLAB_SANDBOX_ZYGOTE=0``)."""
    if request.param == "exec":
        monkeypatch.setenv(zc.ZYGOTE_ENV, "0")
    else:
        monkeypatch.delenv(zc.ZYGOTE_ENV, raising=False)
    return str(request.param)


def _run(path: str, entry: str, memory_mb: int = LIMIT_MB, **kwargs) -> SandboxOutcome:
    policy = AuditPolicy(sandbox=SANDBOX, read_roots=default_read_roots())
    out = run_sandboxed(
        f"aarlab.verify.probes:{entry}",
        kwargs,
        binds=(),
        policy=policy,
        limits=Limits(wall_s=60, memory_mb=memory_mb),
    )
    if path == "zygote":  # the run went through the zygote, not its exec-path fallback
        assert zc._zygote is not None and zc._zygote.alive()
    return out


def _leftovers() -> list[str]:
    parent = cgroup.runs_parent()
    assert parent is not None, cgroup.memory_cgroup_support()
    return sorted(d.name for d in parent.glob(f"run-{os.getpid()}-*"))


def test_memfd_pages_count_against_the_limit(path):
    """memfd_create + write, descriptors kept, nothing mapped: RLIMIT_AS never sees these pages."""
    out = _run(path, "memfd_hold", total_mb=3 * LIMIT_MB)
    assert out.status == "killed" and f"memory limit of {LIMIT_MB} MB" in out.reason, (out, out.detail)
    assert "OOM kill" in out.detail and out.result is None
    assert _leftovers() == []


def test_tmpfs_files_count_against_the_limit(path):
    """Files in the run's own /dev/shm and /tmp (tmpfs, 256 + 1024 MB) are RAM too."""
    out = _run(path, "tmpfs_fill", total_mb=3 * LIMIT_MB)
    assert out.status == "killed" and f"memory limit of {LIMIT_MB} MB" in out.reason, (out, out.detail)
    assert _leftovers() == []


def test_honest_runs_under_the_limit_still_end_ok(path):
    """The same memfd and tmpfs use at half the limit is a normal run."""
    for entry in ("memfd_hold", "tmpfs_fill"):
        out = _run(path, entry, total_mb=LIMIT_MB // 2)
        assert out.status == "ok" and out.result >= LIMIT_MB // 2 - 6, (entry, out.detail)
        assert not [e for e in out.events if e.get("event") == "memory_cgroup_unavailable"]
    out = _run(path, "allocate", mb=3 * LIMIT_MB)  # RLIMIT_AS still gives ordinary over-allocation a
    assert out.reason.endswith(f"(memory limit of {LIMIT_MB} MB)")  # clean MemoryError
    assert "MemoryError" in out.detail
    assert _leftovers() == []


def test_the_run_is_in_its_cgroup_and_cannot_leave_or_loosen_it(path):
    """Inside its own cgroup namespace; no /sys; mounting a cgroup fs, unsharing into a cgroup namespace,
    writing its own limit or the top cgroup.procs: all refused."""
    out = _run(path, "cgroup_escape")
    assert out.status == "ok", out.detail
    got = out.result
    h, _ = cgroup._detect()
    assert h is not None, cgroup.memory_cgroup_support()
    lines = got.pop("cgroup").splitlines()
    if h.version == 1:
        line = next(x for x in lines if "memory" in x.split(":")[1].split(","))
    else:
        line = next(x for x in lines if x.startswith("0::"))
    # a cgroup namespace rooted at the run's own cgroup: the run sees "/" (no host path); that the run
    # really is in its run-* cgroup is watched from the host in the next test, enforced in the OOM ones
    assert line.endswith(":/"), lines
    assert got.pop("sys") == "False"
    assert got and all(v in ("EPERM", "ENOENT", "EACCES", "EROFS") for v in got.values()), got


def test_only_the_run_is_in_the_cgroup_not_the_zygote_handler(monkeypatch):
    """The zygote's handler (host pid namespace) must stay outside the run's cgroup, or the run's pages
    would be charged to it and the OOM killer could pick it: every process in the cgroup lives in the
    run's own pid namespace."""
    seen: list[list[str]] = []
    done = threading.Event()
    parent = cgroup.runs_parent()
    assert parent is not None, cgroup.memory_cgroup_support()

    def watch() -> None:
        while not done.is_set():
            for d in parent.glob(f"run-{os.getpid()}-*"):
                try:
                    pids = (d / "cgroup.procs").read_text().split()
                    seen.append([Path(f"/proc/{p}/status").read_text() for p in pids])
                except OSError:
                    pass
            time.sleep(0.02)

    monkeypatch.delenv(zc.ZYGOTE_ENV, raising=False)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out = _run("zygote", "burn_cpu", seconds=1.0)
    finally:
        done.set()
        t.join()
    assert out.status == "ok", out.detail
    full = [s for s in seen if s]
    assert full, "never saw the run's cgroup hold a process"
    for statuses in full:
        nspids = [next(x for x in s.splitlines() if x.startswith("NSpid:")).split()[1:] for s in statuses]
        assert all(len(n) >= 2 for n in nspids), nspids  # all inside the run's pid namespace
        assert any(n[-1] == "1" for n in nspids), nspids  # pid 1 of it (the run) among them


def test_without_a_memory_cgroup_runs_go_on_with_rlimit_as_and_say_so(path, monkeypatch, capfd):
    """No usable hierarchy: said once on stderr, recorded on every run, never a crash."""
    monkeypatch.setattr(cgroup, "_own_cgroups", lambda: (None, None))
    cgroup._detect.cache_clear()
    try:
        outs = [_run(path, "echo", value=k) for k in range(2)]
    finally:
        cgroup._detect.cache_clear()
    for k, out in enumerate(outs):
        assert out.status == "ok" and out.result == k, out.detail
        ev = [e for e in out.events if e.get("event") == "memory_cgroup_unavailable"]
        assert len(ev) == 1 and ev[0]["why"], out.events
    assert capfd.readouterr().err.count("no memory cgroup for confined runs") == 1


def test_the_agents_shell_is_bounded_too(tmp_path):
    """The agents' confined shell runs on the exec path: a memfd hog there is killed at its limit and
    the output says so; the same command under the limit finishes."""
    from aarlab.agents.shell import ConfinedRunner, ShellLimits

    runner = ConfinedRunner(tmp_path / "sbx", tmp_path / "state", limits=ShellLimits(memory_mb=LIMIT_MB))
    hog = (
        "import os\nfds = [os.memfd_create('x') for _ in range(6)]\n"
        "for fd in fds:\n    for _ in range({mb} // 6): os.write(fd, b'x' * (1 << 20))\nprint('held')\n"
    )
    out = runner.run(["python3", "-c", hog.format(mb=3 * LIMIT_MB)], timeout_s=60)
    assert f"[killed: memory limit of {LIMIT_MB} MB exceeded]" in out.output and "held" not in out.output
    out = runner.run(["python3", "-c", hog.format(mb=LIMIT_MB // 2)], timeout_s=60)
    assert out.exit_code == 0 and "held" in out.output, out.output
    assert _leftovers() == []
