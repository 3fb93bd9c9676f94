"""Trusted entry functions used to exercise the sandbox (and by the red-team suite).

Each one imitates something an agent's method might try inside a verified run, so tests can check the
sandbox records or blocks it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from typing import Any


def echo(value: Any) -> Any:
    """Round-trip a value (the sandbox plumbing works)."""
    return value


def page_cache_probe(path: str) -> dict[str, str]:
    """Ask whether a file's first page is cached without reading it (``preadv2`` + ``RWF_NOWAIT``), the
    receiving end of a page-cache covert channel between runs; and read it plainly."""
    out = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(4096)
        for name, flags in (("nowait", os.RWF_NOWAIT), ("plain", 0)):
            try:
                out[name] = f"ok {os.preadv(fd, [buf], 0, flags)}"
            except OSError as e:
                out[name] = errno.errorcode.get(e.errno or 0, str(e.errno))
    finally:
        os.close(fd)
    return out


def _io_read_bytes() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("read_bytes:")).split()[1])


def touch_pages(path: str, pages: list[int]) -> int:
    """The sending end of a page-cache channel: read one byte of each chosen 4 KiB page of a file every
    run can read (the red team's shape: a later run asks which pages are resident)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return sum(len(os.pread(fd, 1, p * 4096)) for p in pages)
    finally:
        os.close(fd)


def storage_reads(path: str, pages: list[int]) -> dict[str, list[int]]:
    """The receiving end: per page, the bytes fetched from storage (``/proc/self/io`` ``read_bytes``)
    when reading one byte of it, and the major faults when touching it through a mapping. Zero
    everywhere: whether a page was resident says nothing."""
    import mmap
    import resource

    fd = os.open(path, os.O_RDONLY)
    io, faults = [], []
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for p in pages:
            before = _io_read_bytes()
            os.pread(fd, 1, p * 4096)
            io.append(_io_read_bytes() - before)
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            m.madvise(mmap.MADV_RANDOM)
            for p in pages:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
                m[p * 4096 + 1 : p * 4096 + 2]
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_majflt - before)
    finally:
        os.close(fd)
    return {"read_bytes": io, "majflt": faults}


def visible_storage_reads(skip: list[str], expect: list[str] | None = None) -> dict[str, Any]:
    """Read the first page of every file this run can see (but those on the filesystems of ``skip``,
    its own scratch folders) and report the bytes fetched from storage and the mounts that are not
    tmpfs/proc: what a run can read must never come from a page cache another run shares. A file
    mounted on top of a skipped folder (a Python install under ``/tmp``) is still read. ``expect``:
    paths whose reading is reported under ``"expected_read"`` (evidence that the walk covered what
    runs import)."""
    before, files = _io_read_bytes(), 0
    own = {(s, os.stat(s).st_dev) for s in skip if os.path.isdir(s)}
    wanted, read = set(expect or ()), []
    for top, dirs, names in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/dev")]
        for n in names:
            path = os.path.join(top, n)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                dev = os.fstat(fd).st_dev
                if any(path.startswith(s + "/") and dev == d for s, d in own):
                    continue
                os.pread(fd, 1, 0)
                files += 1
                if path in wanted:
                    read.append(path)
            except OSError:
                pass
            finally:
                os.close(fd)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        mounts = [line.split(" - ")[1].split()[0] + " " + line.split()[4] for line in fh]
    others = [
        m
        for m in mounts
        if m.split()[0] not in ("tmpfs", "proc")
        and not m.split()[1].startswith(("/dev/", "/proc/"))
        and m.split()[1] not in skip
    ]
    return {
        "files": files,
        "read_bytes": _io_read_bytes() - before,
        "other_mounts": others,
        "expected_read": sorted(read),
    }


def host_counters() -> dict[str, Any]:
    """What host-wide state a run can read: global ``/proc`` files, ``sysinfo`` (through
    ``sysconf``), and whether it can lock memory; and that ordinary numeric code still runs."""
    import resource

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    files = ["vmstat", "meminfo", "stat", "loadavg", "sys", "pressure", "zoneinfo", "buddyinfo", "cpuinfo"]
    out: dict[str, Any] = {"visible": [f for f in files if os.path.exists(f"/proc/{f}")]}
    out["proc"] = sorted(e for e in os.listdir("/proc") if not e.isdigit())
    try:
        out["phys_pages"] = os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError) as e:
        out["phys_pages"] = repr(e)
    out["memlock"] = list(resource.getrlimit(resource.RLIMIT_MEMLOCK))
    out["self_status"] = os.path.exists("/proc/self/status")
    out["cpu_count"] = os.cpu_count()
    x = np.random.default_rng(0).random((200, 5))
    out["fit"] = float(LogisticRegression().fit(x, x[:, 0] > 0.5).score(x, x[:, 0] > 0.5))
    return out


def session_and_cgroup() -> dict[str, Any]:
    """Whether a run can start a session (each ``setsid`` moves the host-wide autogroup counter in
    ``/proc/self/autogroup``) and which cgroup paths it sees (a host path names the host's layout)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.setsid()
    out: dict[str, Any] = {"setsid": "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")}
    with open("/proc/self/cgroup", encoding="ascii") as fh:
        out["cgroup"] = sorted({line.rstrip("\n").split(":", 2)[2] for line in fh})
    return out


def scheduling(reset: bool = False) -> dict[str, Any]:
    """The run's niceness and its autogroup's (``sched(7)``: the scheduler weighs a session's autogroup
    by the latter). Only the nice value of ``/proc/self/autogroup`` is returned, not its host-wide id.
    ``reset``: first try to write nice 0 there (undoing the niceness the run was given)."""
    out: dict[str, Any] = {}
    if reset:
        out["reset"] = _write_proc("/proc/self/autogroup", "0")
    with open("/proc/self/autogroup", encoding="ascii") as fh:
        out["autogroup_nice"] = int(fh.read().split()[-1])
    out["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    return out


def _write_proc(path: str, value: str) -> str:
    """'ok', or the errno name of a failed open or write."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, "?")
    return "ok"


def proc_writes(rounds: int = 3) -> dict[str, list[str]]:
    """What a run's writes to its own ``/proc`` files do. The kernel rate-limits autogroup writes
    host-wide (one per 100 ms, else EAGAIN): two overlapping runs that can write them can signal bits."""
    files = {"autogroup": "0", "comm": "x", "oom_score_adj": "0", "timerslack_ns": "0", "clear_refs": "1"}
    return {n: [_write_proc(f"/proc/self/{n}", v) for _ in range(rounds)] for n, v in files.items()}


def stat_file(path: str) -> list[int]:
    """(device, inode) of a file as this run sees it."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


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


def shout(mb: int) -> int:
    """Write ``mb`` MB to stdout and to stderr (far past a pipe's buffer), then return ``mb``."""
    import sys

    block = "x" * (1 << 20)
    for _ in range(mb):
        sys.stdout.write(block)
        sys.stderr.write(block)
    sys.stdout.flush()
    return mb


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


def open_fds() -> list[int]:
    """Every descriptor open in the child (a zygote's or a parent's socket must not be among them)."""
    out = []
    for fd in range(4096):
        try:
            os.fstat(fd)
        except OSError:
            continue
        out.append(fd)
    return out


def identity() -> dict[str, Any]:
    """Who the child is: uids, gids, groups and the kernel's view (capabilities, no_new_privs, seccomp)."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        status = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
    keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    return {
        "resuid": list(os.getresuid()),
        "resgid": list(os.getresgid()),
        "groups": os.getgroups(),
        "pid": os.getpid(),
        "umask": os.umask(0o077),
        **{k: status[k].strip() for k in keys if k in status},
    }


def processes() -> list[str]:
    """The processes this child's /proc shows (its own pid namespace only: no zygote, no sibling run)."""
    out = []
    for name in sorted(os.listdir("/proc")):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    out.append(f"{name} {fh.read()[:200]!r}")
            except OSError as e:
                out.append(f"{name} {e.strerror}")
    return out


def signal_pid(pid: int) -> str:
    """Try to signal a process by its host pid (the zygote, a sibling): must fail."""
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as e:
        return e.__class__.__name__
    return "signalled"


def unix_sockets() -> list[str]:
    """Unix sockets this child can find (its network namespace's, /proc/self/net/unix: none of the host's)."""
    with open("/proc/self/net/unix", encoding="utf-8") as fh:
        return fh.read().splitlines()[1:]


def fit_predict(seed: int) -> list[float]:
    """A method-shaped run: fit scikit-learn on seeded data, return probabilities (zygote == exec)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 16))
    y = (x @ rng.normal(size=16) + rng.normal(size=400) > 0).astype(int)
    p = LogisticRegression(max_iter=500).fit(x[:300], y[:300]).predict_proba(x[300:])[:, 1]
    return [float(v) for v in p]


def memfd_hold(total_mb: int, files: int = 6) -> int:
    """Hold ``total_mb`` MiB of RAM in ``files`` memfds written with ``write`` (never mapped, so
    ``RLIMIT_AS`` never sees them), keeping every descriptor open; returns the MiB written."""
    chunk = b"\xa5" * (1 << 20)
    fds, written = [], 0
    for i in range(files):
        fds.append(os.memfd_create(f"hold-{i}"))
        for _ in range(total_mb // files):
            written += os.write(fds[-1], chunk) >> 20
    return written


def tmpfs_fill(total_mb: int, folders: tuple[str, ...] = ("/dev/shm", "/tmp"), file_mb: int = 64) -> int:
    """Write ``total_mb`` MiB into files of ``file_mb`` MiB (under ``RLIMIT_FSIZE``) in the run's tmpfs
    folders (RAM, not address space), the next folder when one is full; returns the MiB written (less
    where every folder is full)."""
    chunk = b"\x5a" * (1 << 20)
    written = 0
    for folder in folders:
        try:
            while written < total_mb:
                with open(os.path.join(folder, f"fill-{written}"), "wb", buffering=0) as fh:
                    for _ in range(min(file_mb, total_mb - written)):
                        fh.write(chunk)
                        written += 1
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return written


def cgroup_escape() -> dict[str, str]:
    """What a run can see of and do to its cgroups: its ``/proc/self/cgroup``, whether ``/sys`` exists,
    and tries to mount a cgroup (or sysfs) file system, to unshare into a user+cgroup namespace, to raise
    its memory limit and to move itself to the top of each hierarchy (every try must fail)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        out = {"cgroup": fh.read(), "sys": str(os.path.exists("/sys"))}
    os.makedirs("/tmp/cg", exist_ok=True)
    for fs, data in ((b"cgroup2", None), (b"cgroup", b"memory"), (b"sysfs", None)):
        rc = libc.mount(fs, b"/tmp/cg", fs, 0, data)
        out[f"mount {fs.decode()}"] = "mounted" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    rc = libc.unshare(0x02000000 | 0x10000000 | 0x00020000)  # CLONE_NEWCGROUP|CLONE_NEWUSER|CLONE_NEWNS
    out["unshare"] = "unshared" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    for line in out["cgroup"].splitlines():
        _, ctrls, path = line.split(":", 2)
        top = "/sys/fs/cgroup" + (f"/{ctrls}" if ctrls else "")
        for target, value in (
            (f"{top}/cgroup.procs", "0"),
            (f"{top}{path}/memory.max", "max"),
            (f"{top}{path}/memory.limit_in_bytes", "-1"),
        ):
            try:
                with open(target, "w") as fh:
                    fh.write(value)
                out[target] = "written"
            except OSError as e:
                out[target] = errno.errorcode.get(e.errno or 0, "?")
    return out
