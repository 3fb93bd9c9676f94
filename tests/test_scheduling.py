"""Niceness that reaches the scheduler: agents yield the cores to verification.

Linux weighs each session's autogroup as one (``sched(7)``), so a niced process alone in its own
session competes as an equal. Stop 23 measured 8.2 s wall per verification with 4 niced search agents,
each in a session of its own, against 2.3 s on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aarlab.agents.orchestrator import attempts
from aarlab.sandbox import zygote_client as zc
from aarlab.sandbox.namespaces import namespace_support

_REPORT = """
import json, os, sys
sys.stdin.read()
print("@aarlab-event " + json.dumps({"type": "done", "pid": os.getpid(), "sid": os.getsid(0),
                                      "pgid": os.getpgid(0)}), flush=True)
"""


def test_an_agent_has_its_own_process_group_in_the_orchestrators_session(tmp_path, monkeypatch):
    monkeypatch.setattr(attempts, "agent_command", lambda: [sys.executable, "-c", _REPORT])
    job = attempts.AgentJob(
        name="a", token="t", server_url="http://127.0.0.1:1", task="t", backend="search",
        direction={}, seed=0, sandbox=str(tmp_path), state_dir=str(tmp_path), home=str(tmp_path),
        attempt=0, max_seconds=30.0,
    )
    attempt = attempts.LocalAttempt(job, dict(os.environ), tmp_path / "a.log")
    deadline = time.monotonic() + 30
    while (out := attempt.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out is not None and out.done is not None, out
    assert out.done["sid"] == os.getsid(0)  # niceness ranks it against the worker (one autogroup)
    assert out.done["pgid"] == out.done["pid"]  # killed as a group, alone


_NICED_RUN = """
import json, os, sys
os.nice(7)
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import SANDBOX, run_sandboxed
out = run_sandboxed("aarlab.verify.probes:scheduling", {"reset": True}, binds=(),
                    policy=AuditPolicy(sandbox=SANDBOX, read_roots=default_read_roots()))
print(json.dumps([out.status, out.detail, out.result]))
"""


@pytest.mark.skipif(bool(namespace_support()), reason="kernel confinement unavailable")
@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="a kernel without autogroups")
@pytest.mark.parametrize("path", ["zygote", "exec"])
def test_a_confined_run_keeps_its_callers_niceness_in_its_own_session(path):
    env = {**os.environ, zc.ZYGOTE_ENV: "0" if path == "exec" else "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _NICED_RUN], env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, detail, result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == "ok", detail
    # and the run cannot undo it (red team, stop 24: it wrote 0 to its own /proc/self/autogroup)
    assert result == {"nice": 7, "autogroup_nice": 7, "reset": "EROFS"}
