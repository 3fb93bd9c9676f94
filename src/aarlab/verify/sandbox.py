"""Run a trusted entry function over untrusted method code in a confined child process.

Confinement, in layers: a fresh working directory holding only what the job needs; a scrubbed
environment (no inherited secrets); resource limits (address space, CPU seconds, file size, no core
dumps); a network namespace with no interfaces when ``unshare`` is available (otherwise the audit hook
blocks sockets); a wall-clock timeout that kills the whole process group; and audit hooks that record
(and for forbidden paths, network and subprocesses, block) what the code tries to do.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aarlab.verify.audit import AuditPolicy, read_events

Status = Literal["ok", "error", "timeout", "killed"]


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits (generous defaults for CPU encoders; tighten per deployment)."""

    wall_s: float = 900.0
    cpu_s: int = 1800
    memory_mb: int = 8192
    file_mb: int = 512
    threads: int = 2


@dataclass
class SandboxOutcome:
    """What came back from one confined run."""

    status: Status
    reason: str
    result: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    stderr_tail: str = ""


def _unshare_prefix() -> list[str]:
    """``unshare --net`` puts the child in a network namespace with no route anywhere (if permitted)."""
    exe = shutil.which("unshare")
    if exe is None:
        return []
    try:
        ok = subprocess.run([exe, "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return [exe, "--net"] if ok else []


_UNSHARE: list[str] | None = None


def apply_limits(limits: Limits) -> None:
    """Own process group and rlimits; runs in the child between fork and exec (also the agents' shell)."""
    os.setsid()
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    fsize = limits.file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def scrubbed_env(home: Path, aarlab_home: str, threads: int) -> dict[str, str]:
    """Only what the child needs; nothing inherited (tokens, database URLs, keys stay outside)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "AARLAB_HOME": aarlab_home,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "AARLAB_TORCH_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_sandboxed(
    entry: str,
    kwargs: dict[str, Any],
    *,
    workdir: Path,
    policy: AuditPolicy,
    aarlab_home: str,
    limits: Limits | None = None,
    network_namespace: bool = True,
) -> SandboxOutcome:
    """Run ``entry(**kwargs)`` in a confined child with cwd ``workdir``; never raises for child failures."""
    global _UNSHARE
    limits = limits or Limits()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    control = workdir / ".aarlab"
    shutil.rmtree(control, ignore_errors=True)  # never mix evidence or results of two runs
    control.mkdir()
    spec = {
        "entry": entry,
        "kwargs": kwargs,
        "policy": policy.to_json(),
        "audit_log": str(control / "audit.jsonl"),
        "out": str(control / "result.json"),
    }
    (control / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    if _UNSHARE is None:
        _UNSHARE = _unshare_prefix()
    cmd = [
        *(_UNSHARE if network_namespace else []),
        sys.executable,
        "-I",
        "-m",
        "aarlab.verify.child",
        str(control / "spec.json"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=scrubbed_env(workdir, aarlab_home, limits.threads),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: apply_limits(limits),
    )
    try:
        _, err = proc.communicate(timeout=limits.wall_s)
        status: Status | None = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        status = "timeout"
    seconds = time.perf_counter() - t0
    events = read_events(control / "audit.jsonl")
    tail = err.decode("utf-8", "replace")[-3000:]
    if status == "timeout":
        return SandboxOutcome(
            "timeout", f"wall-clock limit of {limits.wall_s:.0f} s exceeded", None, events, seconds, tail
        )
    out = control / "result.json"
    if not out.is_file():
        sig = -proc.returncode if proc.returncode < 0 else None
        why = f"killed by signal {signal.Signals(sig).name}" if sig else f"exited with code {proc.returncode}"
        if sig == signal.SIGXCPU:
            why += f" (CPU limit of {limits.cpu_s} s)"
        if "MemoryError" in tail or "std::bad_alloc" in tail:
            why += f" (memory limit of {limits.memory_mb} MB)"
        return SandboxOutcome("killed", f"the method process died: {why}", None, events, seconds, tail)
    data = json.loads(out.read_text(encoding="utf-8"))
    if not data.get("ok"):
        return SandboxOutcome(
            "error", data.get("error", "unknown error"), None, events, seconds, data.get("traceback", tail)
        )
    return SandboxOutcome("ok", "", data["result"], events, seconds, tail)
