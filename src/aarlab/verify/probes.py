"""Trusted entry functions used to exercise the sandbox (and by the red-team suite).

Each one imitates something an agent's method might try inside a verified run, so tests can check the
sandbox records or blocks it.
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any


def echo(value: Any) -> Any:
    """Round-trip a value (the sandbox plumbing works)."""
    return value


def read_file(path: str) -> str:
    """Try to read a file (e.g. the server's label store)."""
    with open(path, encoding="utf-8") as fh:
        return fh.read(200)


def env() -> dict[str, str]:
    """What environment does the child see?"""
    return dict(os.environ)


def connect(host: str = "127.0.0.1", port: int = 9) -> str:
    """Try to open a TCP connection (network must be unreachable)."""
    with socket.create_connection((host, port), timeout=2):
        return "connected"


def interfaces() -> list[str]:
    """Network interfaces visible to the child (only loopback inside the sandbox's namespace)."""
    return sorted(name for _, name in socket.if_nameindex())


def spawn() -> str:
    """Try to start a subprocess."""
    return subprocess.run(["true"], check=False).args[0]


def exec_text(source: str) -> Any:
    """exec() a string (e.g. a code candidate from the dataset, to run it against tests)."""
    scope: dict[str, Any] = {}
    exec(compile(source, "<candidate>", "exec"), scope)
    return sorted(k for k in scope if not k.startswith("__"))


def burn_cpu(seconds: float) -> int:
    """Spin (for the timeout test)."""
    import time

    end, n = time.time() + seconds, 0
    while time.time() < end:
        n += 1
    return n


def allocate(mb: int) -> int:
    """Allocate memory (for the memory-limit test)."""
    block = bytearray(mb * 1024 * 1024)
    return len(block)


def echo_job(job: tuple[str, int]) -> tuple[str, object, list[str]]:
    """A verification-shaped executor job (importable by Ray workers): confined child, evidence, result."""
    from aarlab.verify.audit import AuditPolicy, default_read_roots
    from aarlab.verify.sandbox import SANDBOX, Limits, run_sandboxed

    _, value = job
    out = run_sandboxed(
        "aarlab.verify.probes:echo",
        {"value": value * 10},
        binds=(),
        policy=AuditPolicy(sandbox=SANDBOX, read_roots=default_read_roots()),
        limits=Limits(wall_s=60),
    )
    return out.status, out.result, [e["event"] for e in out.events]
