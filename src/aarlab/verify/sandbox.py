"""Run a trusted entry function over untrusted method code in a confined child process.

Every run of submitted code (a verification seed, each ablation, each transfer-gate seed) is one child
built by :mod:`aarlab.sandbox`: a fresh root with only the interpreter, aarlab's code and the run's own
folders bound read-only (``/sandbox/method``, ``/sandbox/bundle``), a private ``/tmp``, an unprivileged
uid of its own, new mount/pid/net/ipc namespaces, resource limits and a wall-clock timeout. The spec
goes in on stdin; results and audit evidence come back on a pipe (fd 3) that the child cannot take
back; nothing is left in a folder it could rewrite. Python audit hooks in the child are telemetry.

What reaches an agent about a failed run is a fixed category (:data:`REASONS`); the exception text,
traceback and output tail are ``detail`` for overseers only, so a method cannot smuggle data out
through an error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aarlab.sandbox import Bind, Confinement, Limits, require_confinement, run_confined, scrubbed_env
from aarlab.sandbox.cgroup import memory_cgroup_support
from aarlab.sandbox.image import runtime_image
from aarlab.sandbox.namespaces import SandboxUnavailable, module_argv
from aarlab.sandbox.zygote_client import get_zygote, run_in_zygote, zygote_enabled
from aarlab.testbed.tasks.registry import ground_truth_locations
from aarlab.verify.audit import AuditPolicy

__all__ = ["REASONS", "SANDBOX", "Limits", "SandboxOutcome", "method_binds", "run_sandboxed"]

#: What the zygote imports once so that each run's child starts without importing it (issue #16): the
#: child's own entry, the method-loading entry modules and the numeric stack they pull in. Trusted code
#: only, and nothing that holds labels (the zygote refuses a run whose hidden paths it has loaded).
ZYGOTE_PRELOAD = (
    "numpy",
    "scipy",
    "sklearn",
    "sklearn.linear_model",
    "threadpoolctl",
    "aarlab.sandbox.seccomp",
    "aarlab.verify.audit",
    "aarlab.verify.child",
    "aarlab.verify.jobs",
    "aarlab.verify.probes",
    "aarlab.testbed.methods.baselines",  # the built-in methods (a run looked them up: 9 modules, ~40 ms)
)
#: The zygote's runner: the same spec handler the exec path's ``main`` calls.
RUNNER = "aarlab.verify.child:run_spec"

Status = Literal["ok", "error", "timeout", "killed"]
#: Where a run's own folders appear inside the sandbox (identical for every run and every ablation).
SANDBOX = "/sandbox"
#: The only words about a failed run that may reach an agent (everything else is overseer detail).
REASONS = {
    "error": "the method raised an exception",
    "timeout": "the run exceeded its wall-clock limit",
    "killed": "the method process was killed (a resource limit or a signal)",
    "no-result": "the method process exited without returning predictions",
    "bad-predictions": "the method returned malformed predictions",
}


@dataclass
class SandboxOutcome:
    """What came back from one confined run. ``reason`` is agent-safe; ``detail`` is for overseers."""

    status: Status
    reason: str
    result: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""
    confined: bool = True


def method_binds(method_dir: Path, bundle_dir: Path) -> tuple[Bind, ...]:
    """The two read-only folders of a method run, at the same paths for every run."""
    for root in (method_dir, bundle_dir):  # readable by the run's uid, whatever umask wrote them
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
    return (Bind(method_dir, f"{SANDBOX}/method"), Bind(bundle_dir, f"{SANDBOX}/bundle", private=True))


def system_view() -> tuple[tuple[str, str, str], ...]:
    """The runs' system and Python install: the runtime image's tmpfs copies (``sandbox/image.py``),
    built once per machine. Raises :class:`SandboxUnavailable` when it cannot be built (a run never
    falls back to the host's files, which other runs and the agents' shell read too)."""
    try:
        return tuple(runtime_image(ZYGOTE_PRELOAD, ground_truth_locations()).ops())
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise SandboxUnavailable(
            f"verification could not build the runs' runtime image ({e}); it needs root to mount a tmpfs "
            "and about 350 MB of memory"
        ) from e


def _private_copies(binds: Sequence[Bind], staging: Path) -> tuple[Bind, ...]:
    """Each read-only folder not marked ``private`` copied into ``staging``: runs of one result see the
    same method files at the same paths, but never the same page-cached files (no channel between them
    through which pages are resident)."""
    out = []
    for i, b in enumerate(binds):
        if b.writable or b.private:
            out.append(b)
            continue
        dst = staging / str(i)
        src = Path(b.source)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
        out.append(Bind(dst, b.target, private=True))
    return tuple(out)


def _translate(value: Any, binds: Sequence[Bind]) -> Any:
    """Inside paths -> host paths (only for an operator's explicit insecure mode, where nothing is bound)."""
    if isinstance(value, str):
        for b in binds:
            if value == b.target or value.startswith(b.target + "/"):
                return str(b.source) + value[len(b.target) :]
        return value
    if isinstance(value, dict):
        return {k: _translate(v, binds) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, binds) for v in value]
    return value


def _parse_channel(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    events: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            events.append({"event": "corrupt_channel_line", "line": line[:200]})
            continue
        if not isinstance(msg, dict):
            continue
        if "audit" in msg and isinstance(msg["audit"], dict):
            events.append(msg["audit"])
        elif "result" in msg or "error" in msg:
            if final is not None:  # a second final message: someone besides the entry wrote on the pipe
                events.append({"event": "forged_result_message", "blocked": False})
            final = msg
    return events, final


def prestart_zygote(limits: Limits) -> threading.Thread | None:
    """Start this process's zygote in the background (a verification worker calls it at start-up), so
    its ~4 s of imports overlap the agents' first experiments instead of delaying the first
    verification. A run that comes first waits for the same start. None where the zygote is off."""
    if not zygote_enabled():
        return None

    def start() -> None:
        get_zygote(ZYGOTE_PRELOAD, limits.threads)
        with contextlib.suppress(SandboxUnavailable):  # a run that needs it says why
            system_view()

    t = threading.Thread(target=start, daemon=True)
    t.start()
    return t


def run_sandboxed(
    entry: str,
    kwargs: dict[str, Any],
    *,
    binds: Sequence[Bind],
    policy: AuditPolicy,
    limits: Limits | None = None,
    hidden: Sequence[str | Path] = (),
) -> SandboxOutcome:
    """Run ``entry(**kwargs)`` in a confined child; never raises for the child's own failures.

    ``kwargs`` name inside paths (``/sandbox/...``). ``hidden``: host paths beyond
    :func:`ground_truth_locations` that must stay invisible even inside bound trees. Raises
    :class:`aarlab.sandbox.SandboxUnavailable` when the kernel cannot confine the run and the operator
    has not set ``AARLAB_INSECURE_SANDBOX=1``.
    """
    limits = limits or Limits()
    confined = require_confinement("verification")
    if confined:
        with tempfile.TemporaryDirectory(prefix="aarlab-run-") as staging:
            os.chmod(staging, 0o755)
            conf = Confinement(
                binds=_private_copies(binds, Path(staging)),
                hidden=tuple(Path(h) for h in (*ground_truth_locations(), *hidden)),
                scratch=(("/tmp", 1024),),
                cwd="/tmp",
                system=system_view(),
            )
            return _run(entry, kwargs, conf, binds, policy, limits, confined=True)
    conf = Confinement(binds=tuple(binds), hidden=(), cwd="/tmp")
    return _run(entry, kwargs, conf, binds, policy, limits, confined=False)


def _run(
    entry: str,
    kwargs: dict[str, Any],
    conf: Confinement,
    binds: Sequence[Bind],
    policy: AuditPolicy,
    limits: Limits,
    *,
    confined: bool,
) -> SandboxOutcome:
    if not confined:  # the operator's explicit insecure mode: host paths, hooks as the only barrier
        kwargs = _translate(kwargs, binds)
        own = [str(Path(b.source).resolve()) for b in binds]
        keep = [
            r
            for r in policy.forbidden_roots
            if not any(o == r or o.startswith(r.rstrip("/") + "/") for o in own)
        ]
        policy = AuditPolicy(
            **{
                **policy.to_json(),
                "sandbox": own[0] if own else "/tmp",
                "read_roots": [*policy.read_roots, *own],
            },
        )
        policy.forbidden_roots = keep
    spec = {"entry": entry, "kwargs": kwargs, "policy": policy.to_json()}
    env = scrubbed_env("/tmp", "/tmp/aarlab", limits.threads)
    out = None
    if confined:  # a child forked from the zygote, as confined as the exec path's; None: use the exec path
        out = run_in_zygote(RUNNER, spec, conf, limits=limits, env=env, preload=ZYGOTE_PRELOAD)
    if out is None:
        out = run_confined(
            module_argv("aarlab.verify.child"),
            conf if confined else None,
            limits=limits,
            env=env,
            stdin=json.dumps(spec).encode(),
            channel=True,
        )
    events, final = _parse_channel(out.channel)
    if confined and out.memory is None:  # evidence, like seccomp_unavailable: RLIMIT_AS was the only bound
        missing = memory_cgroup_support() or "this run's cgroup could not be made"
        events.append({"event": "memory_cgroup_unavailable", "why": missing})
    tail = out.output.decode("utf-8", "replace")[-3000:]
    memory_reason = f"{REASONS['killed']} (memory limit of {limits.memory_mb} MB)"
    if out.timed_out:
        return SandboxOutcome(
            "timeout",
            f"{REASONS['timeout']} ({limits.wall_s:.0f} s)",
            None,
            events,
            out.seconds,
            tail,
            confined,
        )
    if final is None:
        code = out.returncode
        why = f"exit code {code}" if code >= 0 else f"signal {-code}"
        status: Status = "killed" if code < 0 or code == 137 else "error"
        reason = REASONS["killed"] if status == "killed" else REASONS["no-result"]
        if "MemoryError" in tail or "std::bad_alloc" in tail:
            status, reason = "killed", memory_reason
        if out.memory is not None and out.memory.oom_kills:  # the run's cgroup hit its limit
            status, reason = "killed", memory_reason
            mem = out.memory
            why += f", {mem.oom_kills} OOM kill(s) at the memory cgroup's limit (peak {mem.peak >> 20} MB)"
        return SandboxOutcome(status, reason, None, events, out.seconds, f"{why}\n{tail}", confined)
    if "error" in final:
        err = final.get("error") or {}
        detail = f"{err.get('type', '?')}: {err.get('message', '')}\n{err.get('traceback', '')}\n{tail}"
        reason = REASONS["error"]
        if err.get("type") == "MemoryError":
            reason = memory_reason
        return SandboxOutcome("error", reason, None, events, out.seconds, detail, confined)
    return SandboxOutcome("ok", "", final.get("result"), events, out.seconds, tail, confined)
