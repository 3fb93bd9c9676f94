"""The sandboxed runner for untrusted Python test programs (``aarlab.testbed.execution``)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from aarlab.testbed.execution import network_isolation_available, run_many, run_python


def _alive(pid: int) -> bool:
    """A process is alive if it exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"


def test_good_program_passes():
    res = run_python("def f(x):\n    return x + 1\n\nassert f(1) == 2\nprint('ok')\n")
    assert res.passed and res.status == "passed" and res.detail == ""


def test_failing_assert_fails():
    res = run_python("assert 1 + 1 == 3, 'arithmetic'\n")
    assert not res.passed and res.status == "failed"
    assert "AssertionError: arithmetic" in res.detail


def test_other_exceptions_are_errors():
    res = run_python("undefined_name\n")
    assert res.status == "error" and "NameError" in res.detail


def test_infinite_loop_times_out_and_is_killed(tmp_path: Path):
    pidfile = tmp_path / "pids"
    program = f"""
import os, time
pids = [os.getpid()]
try:
    child = os.fork()
except OSError:  # RLIMIT_NPROC blocks fork for non-root users
    child = -1
if child == 0:
    time.sleep(100)
    os._exit(0)
pids.append(child)
open({str(pidfile)!r}, "w").write(" ".join(map(str, pids)))
while True:
    pass
"""
    t0 = time.perf_counter()
    res = run_python(program, timeout=1.0, guard=False)
    assert res.status == "timeout" and not res.passed
    assert time.perf_counter() - t0 < 4.0
    pids = [int(p) for p in pidfile.read_text().split() if int(p) > 0]
    deadline = time.time() + 3
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "the process group outlived the run"


def test_sleep_times_out():
    res = run_python("import time\ntime.sleep(60)\n", timeout=0.5)
    assert res.status == "timeout" and res.seconds < 3


@pytest.mark.parametrize(
    "program",
    ["x = bytearray(10 ** 10)\n", "chunks = []\nwhile True:\n    chunks.append(' ' * 10 ** 6)\n"],
)
def test_memory_bomb_is_contained(program: str):
    t0 = time.perf_counter()
    res = run_python(program, timeout=10.0, memory_mb=256)
    assert not res.passed and res.status in ("error", "failed")
    assert "MemoryError" in res.detail
    assert time.perf_counter() - t0 < 8.0


def test_child_cannot_read_parent_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AARLAB_TEST_SECRET", "hunter2")
    assert os.environ["AARLAB_TEST_SECRET"] == "hunter2"
    program = """
import os
assert "AARLAB_TEST_SECRET" not in os.environ, "the secret leaked"
assert b"hunter2" not in open("/proc/self/environ", "rb").read()
assert set(os.environ) <= {"PATH", "LANG", "HOME", "LC_CTYPE"}, sorted(os.environ)
"""
    res = run_python(program)
    assert res.passed, res.detail


def test_runs_in_a_fresh_temp_cwd_that_is_removed(tmp_path: Path):
    report = tmp_path / "cwd.txt"
    program = f"""
import os
assert os.listdir(".") == [], os.listdir(".")
open("scratch.txt", "w").write("x")
open({str(report)!r}, "w").write(os.getcwd())
"""
    res = run_python(program, guard=False)
    assert res.passed, res.detail
    cwd = Path(report.read_text())
    assert cwd != Path.cwd() and cwd.resolve() != Path.cwd().resolve()
    assert not cwd.exists(), "the temporary working directory was not removed"


def test_early_exit_is_not_a_pass():
    for program in ("import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\n"):
        res = run_python(program)
        assert not res.passed and res.status == "error", program


def test_guard_blocks_processes_and_writes_outside_cwd(tmp_path: Path):
    target = tmp_path / "escaped.txt"
    res = run_python(f"open({str(target)!r}, 'w').write('x')\n")
    assert res.status == "error" and "outside the working directory" in res.detail
    assert not target.exists()
    res = run_python("import subprocess\nsubprocess.run(['true'])\n")
    assert res.status == "error" and "subprocess.Popen is not allowed" in res.detail
    res = run_python("import os\nos.fork()\n")
    assert res.status == "error" and "os.fork is not allowed" in res.detail
    # inside the working directory, files may be written and removed
    res = run_python("import os\nopen('a.txt', 'w').write('x')\nos.remove('a.txt')\n")
    assert res.passed, res.detail


def test_output_flood_is_capped():
    res = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 100000)\n", timeout=10.0)
    assert res.status == "error" and res.seconds < 8


@pytest.mark.skipif(not network_isolation_available(), reason="cannot create network namespaces here")
def test_no_network_even_without_the_guard():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        res = run_python(program, guard=False)
        assert res.status == "error" and "OSError" in res.detail
        assert run_python(program, guard=False, isolate_network=False).passed  # the server is reachable
    finally:
        server.close()


def test_run_many_keeps_order():
    programs = ["assert True\n", "assert False\n", "raise ValueError('x')\n", "pass\n"]
    res = run_many(programs, timeout=5.0, workers=2, progress=False)
    assert [r.status for r in res] == ["passed", "failed", "error", "passed"]
    assert run_many([], progress=False) == []
