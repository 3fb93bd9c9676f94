"""Run untrusted Python test programs (unit tests over candidate code) in a confined child process.

``run_python`` runs one program; ``run_many`` runs a batch on a small thread pool (each thread only waits
on its child) with a progress bar. Every run gets, in layers:

* a fresh interpreter (``python -I -S -B``: isolated mode, no ``site``, so no site-packages, no user
  site, no ``PYTHON*`` variables, no bytecode written), started in a new session (its own process group);
* a fresh temporary working directory, removed afterwards (the program file lives beside it, not in it);
* a scrubbed environment: only ``PATH``, ``LANG`` and ``HOME`` (= the working directory); nothing of the
  parent's environment (tokens, keys, database URLs) is inherited;
* ``stdin`` from ``/dev/null``; ``stdout``/``stderr`` to files, capped by the file-size limit;
* resource limits set between ``fork`` and ``exec``: address space (``memory_mb``), CPU seconds, file size,
  open files, no core dumps, and no new processes (``RLIMIT_NPROC`` = 0; the kernel ignores it for root);
* a network namespace with no interfaces, when the kernel lets this process create one (root, or
  unprivileged user namespaces); see ``network_isolation_available``;
* a wall-clock timeout, after which the whole process group is killed (the group is killed after a
  normal exit too, so stray children never outlive a run);
* an in-process guard (``guard=True``, a PEP 578 audit hook installed before the program runs) that
  refuses process creation, signals, sockets, ``ctypes`` and writes/deletes outside the working
  directory. It stops accidents (a mutant that deletes files, a fork bomb under root), not an attacker:
  Python code can reach the hook's closure, and the guard does not restrict reads;
* a completion marker: a run only passes if the interpreter reaches the end of the program, so
  ``sys.exit(0)`` or ``os._exit(0)`` in the middle of a test is not a pass. The marker is a nonce handed
  over a pipe, so the program cannot print it by accident (one that reads the interpreter's memory can).

What it does NOT protect against: reading any file the parent's user can read (the test data included),
writes outside the working directory by code that disables the guard, children that call ``setsid``
(when running as root, where ``RLIMIT_NPROC`` does nothing), kernel exploits, and side channels. Use a
container or VM for adversarial code.

Status: ``passed`` (reached the end, exit 0), ``failed`` (an uncaught ``AssertionError``: a test
failed), ``timeout`` (wall-clock or CPU limit), ``error`` (any other exception, a signal, an early exit).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]

#: Largest file (including the captured stdout/stderr) a program may write.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Open file descriptors a program may hold.
MAX_OPEN_FILES = 64
#: Characters of stderr kept in ``ExecResult.detail``.
DETAIL_CHARS = 2000
_CLONE_NEWNET = 0x40000000
_MARKER_PREFIX = b"aarlab-done:"

#: The child's ``-c`` program: read the nonce, install the guard, run the program, print the marker.
_BOOTSTRAP = r"""
import os, sys


def _guard(root):
    blocked = frozenset({
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
        "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "os.putenv",
        "os.unsetenv", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "ctypes.dlopen",
        "ctypes.dlsym", "ctypes.call_function", "webbrowser.open", "urllib.Request",
    })
    path_events = frozenset({
        "os.remove", "os.rmdir", "os.rename", "os.truncate", "shutil.rmtree", "os.chmod", "os.chown",
        "os.mkdir", "os.symlink", "os.link", "os.utime", "os.chflags", "os.lchflags",
    })
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    realpath = os.path.realpath
    fspath = os.fspath
    prefix = root.rstrip(os.sep) + os.sep

    def inside(path):
        if isinstance(path, int):
            return True
        try:
            full = realpath(fspath(path))
        except Exception:
            return False
        if isinstance(full, bytes):
            full = full.decode("utf-8", "surrogateescape")
        return full == root or full.startswith(prefix)

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            if args[0] is not None and args[2] & write_flags and not inside(args[0]):
                raise PermissionError(f"sandbox: writing {args[0]!r} outside the working directory")
        elif event in path_events:
            paths = args[:2] if event in ("os.rename", "os.symlink", "os.link") else args[:1]
            for p in paths:
                if p is not None and not inside(p):
                    raise PermissionError(f"sandbox: {event} on {p!r} outside the working directory")

    sys.addaudithook(hook)


def _main():
    path, fd, guard = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    nonce = os.read(fd, 64)
    os.close(fd)
    with open(path, encoding="utf-8") as fh:
        code = compile(fh.read(), path, "exec")
    sys.argv = [path]
    if guard:
        _guard(os.path.realpath(os.getcwd()))
    exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"\n" + nonce + b"\n")


_main()
"""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of one run: ``passed`` is ``status == "passed"``; ``detail`` says why not."""

    passed: bool
    status: Status
    detail: str
    seconds: float = 0.0


_NETNS: bool | None = None
_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _unshare_net() -> None:
    """Move the calling process into a new, empty network namespace (raises OSError if not allowed)."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def network_isolation_available() -> bool:
    """Whether children can be put in an empty network namespace here (probed once per process)."""
    global _NETNS
    if _NETNS is None:
        if not sys.platform.startswith("linux"):
            _NETNS = False
        else:
            try:
                subprocess.run(
                    [sys.executable, "-I", "-S", "-c", "pass"],
                    preexec_fn=_unshare_net,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=30,
                    check=True,
                )
                _NETNS = True
            except (OSError, subprocess.SubprocessError):
                _NETNS = False
    return _NETNS


def _limiter(memory_mb: int, cpu_seconds: int, netns: bool) -> Callable[[], None]:
    """The function run in the child between ``fork`` and ``exec``."""
    memory = memory_mb * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        if netns:
            _unshare_net()

    return apply


def _env(home: Path) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home)}


def _tail(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _classify(returncode: int, finished: bool, stderr: str, cpu_seconds: int) -> ExecResult:
    tail = stderr[-DETAIL_CHARS:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if returncode == 0 and finished:
        return ExecResult(True, "passed", "")
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        if sig == signal.SIGXCPU:
            return ExecResult(False, "timeout", f"CPU time limit of {cpu_seconds} s exceeded")
        why = ""
        if sig == signal.SIGXFSZ:
            why = f" (file size limit of {MAX_FILE_BYTES // (1024 * 1024)} MB)"
        elif sig == signal.SIGKILL:
            why = " (the CPU hard limit, or the kernel's out-of-memory killer)"
        return ExecResult(False, "error", f"killed by signal {name}{why}\n{tail}".rstrip())
    if last.startswith("AssertionError"):
        return ExecResult(False, "failed", tail)
    if returncode == 0:
        return ExecResult(False, "error", "the program exited before reaching its end (sys.exit/os._exit)")
    return ExecResult(False, "error", tail or f"exit code {returncode}")


def run_python(
    program: str,
    timeout: float = 5.0,
    memory_mb: int = 512,
    *,
    guard: bool = True,
    isolate_network: bool = True,
) -> ExecResult:
    """Run ``program`` (Python source) in a confined child; never raises for the program's failures.

    ``timeout`` is the wall-clock limit in seconds (the CPU limit is ``ceil(timeout) + 1``);
    ``memory_mb`` caps the address space. ``isolate_network`` is best effort: it applies when
    ``network_isolation_available()``; the guard blocks sockets either way.
    """
    cpu_seconds = math.ceil(timeout) + 1
    netns = isolate_network and network_isolation_available()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aarlab-exec-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        script = root / "program.py"
        script.write_text(program, encoding="utf-8")
        nonce = _MARKER_PREFIX + secrets.token_hex(16).encode()
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, nonce)
        finally:
            os.close(write_fd)
        cmd = [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            _BOOTSTRAP,
            str(script),
            str(read_fd),
            "1" if guard else "0",
        ]
        timed_out = False
        try:
            with (root / "stdout").open("wb") as out, (root / "stderr").open("wb") as err:
                proc = subprocess.Popen(
                    cmd,
                    cwd=work,
                    env=_env(work),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    pass_fds=(read_fd,),
                    start_new_session=True,
                    preexec_fn=_limiter(memory_mb, cpu_seconds, netns),
                )
        finally:
            os.close(read_fd)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc.pid)
        proc.wait()
        seconds = time.perf_counter() - t0
        if timed_out:
            return ExecResult(False, "timeout", f"wall-clock limit of {timeout:g} s exceeded", seconds)
        finished = _tail(root / "stdout", 256).rstrip().endswith(nonce)
        stderr = _tail(root / "stderr", 64 * 1024).decode("utf-8", "replace")
    result = _classify(proc.returncode, finished, stderr, cpu_seconds)
    return ExecResult(result.passed, result.status, result.detail, seconds)


def run_many(
    programs: Sequence[str],
    timeout: float = 5.0,
    workers: int = 2,
    *,
    memory_mb: int = 512,
    guard: bool = True,
    isolate_network: bool = True,
    progress: bool = True,
    description: str = "running programs",
) -> list[ExecResult]:
    """Run every program (``workers`` at a time); results are in the order of ``programs``."""
    results: list[ExecResult | None] = [None] * len(programs)
    if not programs:
        return []
    network_isolation_available()  # probe once, before the threads start

    def one(i: int) -> tuple[int, ExecResult]:
        return i, run_python(programs[i], timeout, memory_mb, guard=guard, isolate_network=isolate_network)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, i) for i in range(len(programs))]
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(
                TextColumn(description),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task(description, total=len(programs))
                for fut in as_completed(futures):
                    i, res = fut.result()
                    results[i] = res
                    bar.advance(task)
        else:
            for fut in as_completed(futures):
                i, res = fut.result()
                results[i] = res
    return [r for r in results if r is not None]
