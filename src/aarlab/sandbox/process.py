"""Run one confined process: limits, a scrubbed environment, a timeout, and output over pipes.

Output and the result channel are pipes the parent reads (bounded), never files the child could
rewrite afterwards. The result channel is the child's fd 3: whatever the child writes there reaches
the parent once, in order; nothing the child does later can take it back.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aarlab.sandbox import cgroup
from aarlab.sandbox.namespaces import SETUP_FAILED, Confinement, confined_argv

#: The most bytes kept from a child's stdout+stderr and from its result channel.
MAX_OUTPUT = 4 * 1024 * 1024
MAX_CHANNEL = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits (generous defaults for CPU work; tighten per deployment)."""

    wall_s: float = 900.0
    cpu_s: int = 1800
    memory_mb: int = 8192
    file_mb: int = 512
    #: BLAS/OpenMP/torch threads in the child. One, like the trusted side (``testbed/blas.py``): on
    #: shared cores OpenBLAS threads spin, and verification already runs several children at once.
    threads: int = 1
    processes: int = 256


def apply_limits(limits: Limits) -> None:
    """Own session and rlimits; runs in the child between fork and exec.

    A new session is a new autogroup (``sched(7)``), which the scheduler weighs as nice 0 whatever the
    caller's niceness: the caller's niceness is carried over to it, so a niced agent's commands stay niced.
    """
    os.setsid()
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > 0:
        with contextlib.suppress(OSError):
            fd = os.open("/proc/self/autogroup", os.O_WRONLY)
            try:
                os.write(fd, str(nice).encode())
            finally:
                os.close(fd)
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
    fsize = limits.file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # nothing a run does needs locked memory, and locking moves host-wide counters other runs could read
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    # counted per uid; every confined run has a uid of its own, so this caps only the run itself
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))


def scrubbed_env(home: str, aarlab_home: str, threads: int) -> dict[str, str]:
    """Only what the child needs; nothing inherited (tokens, database URLs, keys stay outside)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "TMPDIR": "/tmp",
        "AARLAB_HOME": aarlab_home,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "AARLAB_TORCH_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass(frozen=True)
class ProcessOutcome:
    """What one confined process did. ``channel`` is what it wrote on fd 3 (empty without a channel);
    ``memory``: what its memory cgroup counted (``None``: the run had none, see :mod:`.cgroup`)."""

    returncode: int
    output: bytes
    channel: bytes
    timed_out: bool
    seconds: float
    memory: cgroup.MemoryReport | None = None


def _drain(fd: int, cap: int, sink: list[bytes]) -> None:
    total = 0
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(65536):
            if total < cap:
                sink.append(chunk[: cap - total])
            total += len(chunk)


def run_confined(
    argv: Sequence[str],
    conf: Confinement | None,
    *,
    limits: Limits,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    channel: bool = False,
    cwd: str | None = None,
) -> ProcessOutcome:
    """Run ``argv`` inside ``conf`` (``None``: unconfined, only for an operator's explicit insecure
    mode); stdout and stderr interleaved into one bounded buffer; never raises for the child's failures.
    """
    cmd = confined_argv(conf, argv) if conf is not None else list(argv)
    out_r, out_w = os.pipe()
    chan_r, chan_w = os.pipe() if channel else (-1, -1)
    # the child runs as another uid: let it reopen its own output as /dev/stdout (``echo x > /dev/stdout``)
    with contextlib.suppress(OSError):
        os.fchmod(out_w, 0o622)
    # the child finds the channel on fd 3 whatever number the pipe got here (dup2 in preexec; 3 is
    # listed so that close_fds keeps it)
    pass_fds: tuple[int, ...] = (chan_w, 3) if channel else ()
    t0 = time.monotonic()
    # every page the run makes the host hold (memfd, tmpfs, shm: not in RLIMIT_AS) counts against this
    memcg = cgroup.open_run(limits.memory_mb) if conf is not None else None

    def preexec() -> None:
        if memcg is not None:
            try:
                cgroup.join_cgroup(memcg.path)  # before the setup script: unshare, setpriv, the run
            except OSError as e:
                os.write(2, f"aarlab sandbox: cannot join the run's memory cgroup: {e}\n".encode())
                os._exit(SETUP_FAILED)
        apply_limits(limits)
        if channel and chan_w != 3:
            os.dup2(chan_w, 3)

    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd or "/",
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            pass_fds=pass_fds,
            preexec_fn=preexec,
        )
    except BaseException:
        if memcg is not None:
            memcg.close()
        raise
    os.close(out_w)
    if channel:
        os.close(chan_w)
    out_chunks: list[bytes] = []
    chan_chunks: list[bytes] = []
    readers = [threading.Thread(target=_drain, args=(out_r, MAX_OUTPUT, out_chunks), daemon=True)]
    if channel:
        readers.append(threading.Thread(target=_drain, args=(chan_r, MAX_CHANNEL, chan_chunks), daemon=True))
    for t in readers:
        t.start()
    if stdin is not None and proc.stdin is not None:
        pipe = proc.stdin

        def feed() -> None:
            try:
                pipe.write(stdin)
            except OSError:
                pass  # the child exited or was killed before reading everything
            finally:
                with contextlib.suppress(OSError):
                    pipe.close()

        threading.Thread(target=feed, daemon=True).start()
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    # kills whatever of the run is left (a grandchild that left the process group too), then removes it
    memory = memcg.close() if memcg is not None else None
    for t in readers:
        # a grandchild that escaped the process group may hold the pipes open: never wait forever
        t.join(timeout=5)
    return ProcessOutcome(
        proc.returncode, b"".join(out_chunks), b"".join(chan_chunks), timed_out, time.monotonic() - t0, memory
    )
