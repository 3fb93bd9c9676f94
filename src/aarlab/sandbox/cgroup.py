"""A memory cgroup per confined run: every page a run makes the host hold counts against its limit.

``RLIMIT_AS`` bounds only the address space: memfd, shared-memory and tmpfs (``/tmp``, ``/dev/shm``)
pages a run unmapped stay in RAM uncounted. A memory cgroup charges every page (anon, shmem, tmpfs, page
cache, kernel) to the run, and the kernel's OOM killer ends it at the limit.

The trusted side (root, host namespaces) makes one cgroup per run (:func:`open_run`: limit
``Limits.memory_mb``, no swap where the controller has the knob); the run's first process joins it
(:func:`join_cgroup`) before any untrusted code: the exec path's ``preexec_fn``, the zygote's forked
run at the top of ``_run`` (never its handler). :meth:`RunCgroup.close` reads the OOM kills and peak,
kills what is left and removes the folder. The run cannot leave or loosen it: no capabilities, not the
files' owner (root), no ``/sys`` in its root, and seccomp refuses ``mount``/``unshare``.

Detected once per process (:func:`memory_cgroup_support`): cgroup v2 where this process's cgroup can
hand the ``memory`` controller to its children (``memory.max``, ``memory.swap.max``, ``memory.oom.group``,
``memory.events``, ``cgroup.kill``; a v2 cgroup holding processes first moves them to a leaf
``aarlab-host``, see :func:`_enable_memory`), else v1's ``memory`` hierarchy (``memory.limit_in_bytes``,
``memory.memsw.limit_in_bytes`` if swap is accounted, ``memory.oom_control``). Runs live in
``<own cgroup>/aarlab/run-<pid>-<token>``. Where neither is usable, runs have ``RLIMIT_AS`` only: said
once on stderr, recorded per run (``memory_cgroup_unavailable``).

Source: Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/memory.rst of the Linux kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PARENT_NAME = "aarlab"  #: made under this process's own cgroup to hold the runs' cgroups
DRAIN_S = 5.0  #: seconds :meth:`RunCgroup.close` waits for killed processes to leave


@dataclass(frozen=True)
class MemoryReport:
    """One run's ``oom_kills`` (processes its OOM killer ended) and ``peak`` bytes charged (0: unknown)."""

    oom_kills: int = 0
    peak: int = 0


@dataclass(frozen=True)
class _Hierarchy:
    version: int  # 1 or 2
    parent: Path  # the folder runs' cgroups are made in


def _read(p: Path) -> str:
    return p.read_text(encoding="ascii").strip()


def _write(p: Path, value: str) -> None:
    """Write one value to a cgroup file (raises ``OSError`` with the kernel's errno on refusal)."""
    with open(p, "w", encoding="ascii") as fh:
        fh.write(value)


def _keyed(p: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (``memory.events``, ``memory.oom_control``) as a dict; {} if unreadable."""
    try:
        return {k: int(v) for k, v in (line.split() for line in _read(p).splitlines() if line.strip())}
    except (OSError, ValueError):
        return {}


def _own_cgroups() -> tuple[str | None, str | None]:
    """(this process's cgroup v2 path, its cgroup v1 ``memory`` path) from ``/proc/self/cgroup``."""
    v2 = v1 = None
    for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and ctrls == "":
            v2 = path
        elif "memory" in ctrls.split(","):
            v1 = path
    return v2, v1


def _mounts() -> list[tuple[str, str, str, str]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount in ``/proc/self/mountinfo``."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(r) >= 3 and r[0] in ("cgroup", "cgroup2"):
            out.append((r[0], f[3], f[4].replace("\\040", " "), r[2]))
    return out


def _under(mount_root: str, point: str, path: str) -> Path | None:
    """The folder of cgroup ``path`` inside a mount of ``mount_root`` at ``point`` (None: not visible)."""
    rel = os.path.relpath(path, mount_root)
    return None if rel.startswith("..") else Path(point) / ("" if rel == "." else rel)


def _enable_memory(base: Path) -> None:
    """Hand the memory controller to ``base``'s children. A non-root v2 cgroup holding processes may not
    (EBUSY, "no internal processes"): they (this one, whoever shares its cgroup) first move to the leaf
    ``base/aarlab-host``, as a delegated subtree's owner does; inside ``base``, its limits bound them."""
    leaf, moved = base / f"{PARENT_NAME}-host", set[str]()
    for _ in range(20):
        try:
            _write(base / "cgroup.subtree_control", "+memory")
            break
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
        leaf.mkdir(mode=0o755, exist_ok=True)
        for pid in _read(base / "cgroup.procs").split():  # again: one forked meanwhile is born in ``base``
            with contextlib.suppress(ProcessLookupError):
                _write(leaf / "cgroup.procs", pid)
                moved.add(pid)
    else:
        raise RuntimeError(f"cannot empty {base} to hand the memory controller to its children")
    if moved:
        print(
            f"aarlab sandbox: moved {len(moved)} process(es) of {base} into {leaf.name}/ so that the runs' "
            "cgroups below it can have the memory controller (cgroup v2)",
            file=sys.stderr,
            flush=True,
        )


def _v2_parent(own: str) -> Path:
    """Make ``<own>/aarlab`` with the memory controller handed down (raises ``OSError``/``RuntimeError``)."""
    for _fs, root, point, _opts in (m for m in _mounts() if m[0] == "cgroup2"):
        base = _under(root, point, own)
        if base is None or not (base / "cgroup.controllers").exists():
            continue
        base = base.parent if base.name == f"{PARENT_NAME}-host" else base  # moved by an earlier aarlab
        if "memory" not in _read(base / "cgroup.controllers").split():
            raise RuntimeError(f"the cgroup v2 memory controller is not available in {base}")
        if "memory" not in _read(base / "cgroup.subtree_control").split():
            _enable_memory(base)
        parent = base / PARENT_NAME
        parent.mkdir(mode=0o755, exist_ok=True)
        if "memory" not in _read(parent / "cgroup.subtree_control").split():
            _write(parent / "cgroup.subtree_control", "+memory")
        return parent
    raise RuntimeError("no cgroup2 mount shows this process's cgroup")


def _v1_parent(own: str) -> Path:
    """Make ``<own>/aarlab`` in the v1 ``memory`` hierarchy (raises ``OSError``/``RuntimeError``)."""
    for _fs, root, point, _o in (m for m in _mounts() if m[0] == "cgroup" and "memory" in m[3].split(",")):
        base = _under(root, point, own)
        if base is not None and (base / "memory.limit_in_bytes").exists():
            (base / PARENT_NAME).mkdir(mode=0o755, exist_ok=True)
            return base / PARENT_NAME
    raise RuntimeError("no cgroup v1 memory mount shows this process's cgroup")


def _sweep(h: _Hierarchy) -> None:
    """Remove run cgroups whose creating process is gone (a parent that crashed mid-run)."""
    for d in h.parent.glob("run-*-*"):
        try:
            os.kill(int(d.name.split("-")[1]), 0)
        except ProcessLookupError:
            RunCgroup(d, h.version).close()
        except (OSError, ValueError):
            pass


@lru_cache(maxsize=1)
def _detect() -> tuple[_Hierarchy | None, str]:
    """The usable hierarchy (v2 first), proven by making, limiting and removing one probe cgroup; or
    None and why not. Says why once on stderr."""
    why: list[str] = []
    try:
        v2, v1 = _own_cgroups()
    except (OSError, ValueError) as e:
        return None, f"cannot read /proc/self/cgroup ({e})"
    for version, own, make in ((2, v2, _v2_parent), (1, v1, _v1_parent)):
        if own is None:
            continue
        try:
            h = _Hierarchy(version, make(own))
            _sweep(h)
            _create(h, 64).close()  # the probe: make, limit and remove one
            return h, ""
        except (OSError, RuntimeError) as e:
            why.append(f"v{version}: {e}")
    reason = "; ".join(why) or "this process is in no cgroup with a memory controller"
    print(
        f"aarlab sandbox: no memory cgroup for confined runs ({reason}); their memory is bounded by "
        "RLIMIT_AS only, which does not count memfd, shared-memory or tmpfs pages",
        file=sys.stderr,
        flush=True,
    )
    return None, reason


def memory_cgroup_support() -> str:
    """'' when each run gets a memory cgroup; otherwise why not (detected once per process)."""
    return _detect()[1]


def runs_parent() -> Path | None:
    """The folder the runs' cgroups are made in (None where there are none)."""
    h = _detect()[0]
    return h.parent if h is not None else None


def _create(h: _Hierarchy, memory_mb: int) -> RunCgroup:
    path = h.parent / f"run-{os.getpid()}-{secrets.token_hex(6)}"
    path.mkdir(mode=0o755)
    cg = RunCgroup(path, h.version)
    limit = str(memory_mb * 1024 * 1024)
    try:
        if h.version == 2:
            _write(path / "memory.max", limit)
            if (path / "memory.swap.max").exists():
                _write(path / "memory.swap.max", "0")
            if (path / "memory.oom.group").exists():  # an OOM kill ends the whole run, not one process
                _write(path / "memory.oom.group", "1")
        else:
            _write(path / "memory.limit_in_bytes", limit)
            if (path / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no swap on top
                _write(path / "memory.memsw.limit_in_bytes", limit)
    except OSError:
        cg.close()
        raise
    return cg


def open_run(memory_mb: int) -> RunCgroup | None:
    """A fresh cgroup limited to ``memory_mb`` MiB (no swap) for one run; None where cgroups are unusable
    (said once) or, rarely, where this one could not be made although the probe's could (said)."""
    h = _detect()[0]
    try:
        return _create(h, memory_mb) if h is not None else None
    except OSError as e:
        print(f"aarlab sandbox: cannot make this run's memory cgroup ({e})", file=sys.stderr, flush=True)
        return None


def join_cgroup(path: str | Path) -> None:
    """Move the calling process into the cgroup at ``path`` (its children follow). Runs in the run's
    first process, still trusted, root and single-threaded (just forked), before any untrusted code.
    Raises ``OSError`` on refusal.

    On v1 the calling thread is moved through ``tasks``: for a single-threaded process that moves the
    process, and the kernel skips the thread-group lock whose write side waits for an RCU grace period
    (``cgroup_procs_write_start`` in kernel/cgroup/cgroup.c: a write of 0 to ``tasks`` takes no
    threadgroup lock). Through ``cgroup.procs`` the join took 7–10 ms of a ~30 ms bare run."""
    tasks = Path(path) / "tasks"
    _write(tasks if tasks.exists() else Path(path) / "cgroup.procs", "0")


@dataclass(frozen=True)
class RunCgroup:
    """One run's memory cgroup (``path``: its folder; ``version``: 1 or 2)."""

    path: Path
    version: int

    def pids(self) -> list[int]:
        """The processes in the cgroup now (host pids); [] once it is empty or gone."""
        try:
            return [int(x) for x in _read(self.path / "cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def report(self) -> MemoryReport:
        """OOM kills and peak bytes so far (v2: ``memory.events``/``memory.peak``; v1:
        ``memory.oom_control``/``memory.max_usage_in_bytes``)."""
        v2 = self.version == 2
        kills = _keyed(self.path / ("memory.events" if v2 else "memory.oom_control")).get("oom_kill", 0)
        peak_file = "memory.peak" if v2 else "memory.max_usage_in_bytes"
        try:
            peak = int(_read(self.path / peak_file))
        except (OSError, ValueError):
            peak = 0
        return MemoryReport(kills, peak)

    def close(self) -> MemoryReport:
        """Read the report, SIGKILL whatever is still in the cgroup, wait for it to empty and remove the
        folder. Never raises: a folder that will not go is said on stderr (and swept later)."""
        rep = self.report()
        if self.version == 2 and (self.path / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.path / "cgroup.kill", "1")
        end = time.monotonic() + DRAIN_S
        while (left := self.pids()) and time.monotonic() < end:
            for pid in left:  # v1, or v2 before cgroup.kill (5.14)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        while True:
            try:
                self.path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                if time.monotonic() < end:
                    time.sleep(0.005)
                    continue
                print(f"aarlab sandbox: cannot remove the run's cgroup {self.path}: {e}", file=sys.stderr)
            return rep
