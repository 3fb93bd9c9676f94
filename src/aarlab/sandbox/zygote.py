"""A zygote for confined runs: one long-lived process that has already imported the heavy modules a run
needs (numpy, scipy, scikit-learn, aarlab's child entry) and forks a fresh confined child per run.

Started by the trusted parent (``aarlab.sandbox.zygote_client``) as a fresh interpreter
(``python -I``, scrubbed environment, nothing inherited but one control socket), so it never holds
labels, bundles, seeds or anything else of a run: it is not a fork of the parent. Per run it receives,
over the control socket (``SCM_RIGHTS``), three descriptors: a per-run socket, the write end of the
run's output pipe and of its result channel; the request itself (root ops, uid, limits, environment,
spec) is read by the forked handler, never by the zygote, so no run's spec ever sits in the memory the
next run is forked from.

Per run (the same confinement as ``namespaces._SETUP`` + ``setpriv``, built from the same op list,
``namespaces.setup_ops``):

* handler (forked from the zygote, root, host namespaces): ``unshare(CLONE_NEWPID)``, forks the run,
  waits for it (pidfd) and reports its exit status on the per-run socket; on a ``kill`` request, on the
  parent's socket closing, or past the wall limit it SIGKILLs the run (pid 1 of its pid namespace: the
  kernel kills everything in it).
* run (pid 1 of a new pid namespace): joins its memory cgroup, starts its session and applies the
  rlimits, ``unshare``s new mount, net, ipc, uts and cgroup namespaces, makes every mount private,
  mounts a tmpfs root with the read-only binds, hidden paths covered, a fresh read-only ``/proc``,
  ``/dev``, ``/tmp``, ``pivot_root``s and detaches the old root (``mount(2)`` through ctypes, no
  shell), empties the capability bounding set, switches to the run's uid and gid
  with no supplementary groups, clears every capability, sets ``no_new_privs``, checks all of it in
  ``/proc/self/status``, closes every descriptor but 0-3, replaces the environment, and only then calls
  the runner (``aarlab.verify.child:run_spec``), which loads seccomp and the audit hook before any
  untrusted import.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import importlib
import json
import os
import platform
import resource
import select
import signal
import socket
import struct
import sys
from typing import Any

from aarlab.sandbox.cgroup import join_cgroup
from aarlab.sandbox.namespaces import PROC_OPTIONS, SETUP_FAILED
from aarlab.sandbox.process import Limits, apply_limits

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP = 0x00020000, 0x04000000, 0x08000000, 0x02000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
_DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

#: Real paths of every module file loaded in the zygote (checked against each run's hidden paths).
_LOADED: list[str] = []


class _SetupError(Exception):
    pass


def _ok(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise _SetupError(f"{what}: {os.strerror(e)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _ok(_libc.mount(_b(src), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        pass


def build_root(root: str, ops: list[list[str]], uid: int, cwd: str) -> None:
    """What ``namespaces._SETUP`` does, op for op, with mount(2): run inside fresh namespaces."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    _mount("aarlab-root", root, "tmpfs", 0, "size=8m,mode=755")
    for op, a, b in ops:
        if op in ("ro", "rw"):
            t = root + b
            if os.path.isdir(a):
                os.makedirs(t, exist_ok=True)
            else:
                _touch(t)
            _mount(a, t, None, MS_BIND)
            ro = MS_RDONLY if op == "ro" else 0
            _mount(None, t, None, MS_REMOUNT | MS_BIND | ro | MS_NOSUID | MS_NODEV)
        elif op == "hide":
            t = root + a
            if os.path.isdir(t) and not os.path.islink(t):
                _mount("aarlab-hidden", t, "tmpfs", MS_RDONLY, "size=4k,mode=000")
            elif os.path.exists(t):
                _mount("/dev/null", t, None, MS_BIND)
        elif op == "link":
            os.makedirs(os.path.dirname(root + b), exist_ok=True)
            os.symlink(a, root + b)
        elif op == "scratch":
            os.makedirs(root + a, exist_ok=True)
            _mount(
                "aarlab-scratch",
                root + a,
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                f"size={b}m,mode=700,uid={uid},gid={uid}",
            )
        else:
            raise _SetupError(f"unknown op {op}")
    for d in ("/proc", "/dev", "/tmp", "/.old"):
        os.makedirs(root + d, exist_ok=True)
    try:  # the run's processes only, no host-wide counters (namespaces.PROC_OPTIONS)
        _mount("proc", root + "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, PROC_OPTIONS)
    except _SetupError:  # a kernel older than 5.8: the exec path's script falls back the same way
        _mount("proc", root + "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("aarlab-dev", root + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for n in _DEVICES:
        _touch(f"{root}/dev/{n}")
        _mount(f"/dev/{n}", f"{root}/dev/{n}", None, MS_BIND)
    os.symlink("/proc/self/fd", f"{root}/dev/fd")
    for i, n in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{root}/dev/{n}")
    os.makedirs(f"{root}/dev/shm")
    _mount("aarlab-shm", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
    if not os.path.ismount(root + "/tmp"):
        _mount("aarlab-tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=512m,mode=1777")
    os.chdir(root)
    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise _SetupError(f"pivot_root: unknown architecture {platform.machine()}")
    _ok(_libc.syscall(nr, b".", b".old"), "pivot_root")
    _ok(_libc.umount2(b"/.old", MNT_DETACH), "cannot detach the old root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    os.chdir(cwd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_privileges(uid: int) -> None:
    """setpriv --reuid --regid --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the last capability this kernel knows
                break
            _ok(-1, f"cannot drop capability {cap} from the bounding set")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    data = (_CapData * 2)()
    _ok(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # as after setpriv's exec: /proc/self is ours
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")  # reset by the uid switch
    with open("/proc/self/status", encoding="utf-8") as fh:
        status = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if key in status and int(status[key], 16) != 0:
            raise _SetupError(f"{key} is not empty after the switch")
    if (
        status.get("NoNewPrivs", "").strip() != "1"
        or os.getresuid() != (uid,) * 3
        or os.getresgid() != (uid,) * 3
    ):
        raise _SetupError("the uid switch or no_new_privs did not hold")
    if os.getgroups():
        raise _SetupError("supplementary groups remain")


def _hidden_loaded(hidden: list[str]) -> list[str]:
    return [f for f in _LOADED for h in hidden if f == h or f.startswith(h.rstrip("/") + "/")]


def _run(req: dict[str, Any], out_fd: int, chan_fd: int, ready_fd: int) -> None:
    """The run itself (pid 1 of a fresh pid namespace); never returns."""
    try:
        if req.get("memcg"):  # first: everything below, and everything the run starts, is charged to it
            join_cgroup(req["memcg"])
        # its own session, niced as its caller, and rlimits: before the root is built, as the exec path
        # does them before it starts (the run's /proc is read-only: the autogroup is set on the host's)
        apply_limits(Limits(**req["limits"]))
        # a cgroup namespace rooted at the run's own cgroup (joined above): /proc/self/cgroup says "/"
        _ok(
            _libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP),
            "unshare",
        )
        os.umask(0o022)  # the root's folders as the setup script makes them (the run's umask is set below)
        build_root(req["root"], req["ops"], int(req["uid"]), req["cwd"])
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.dup2(chan_fd, 3)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        drop_privileges(int(req["uid"]))
        os.write(ready_fd, b"1")
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os.umask(0o077)
        os.environ.clear()
        os.environ.update(req["env"])
        os.environ["PWD"] = req["cwd"]  # as the exec path's shell leaves it
        sys.argv = [req["runner"]]
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed()  # fresh entropy per run, as a fresh interpreter would have
        threads = int(req["limits"]["threads"])
        if req.get("zygote_threads") != threads and "threadpoolctl" in sys.modules:
            sys.modules["threadpoolctl"].threadpool_limits(threads)
    except BaseException as e:  # nothing untrusted has run yet: say why and give up
        with contextlib.suppress(OSError):
            os.write(2, f"aarlab zygote setup failed: {e}\n".encode())
        os._exit(SETUP_FAILED)
    runner, spec = req["runner"], req["spec"]
    req.clear()  # the host side of the request (bind sources, hidden paths, ops) is not the run's business
    code = 1
    try:
        module, _, func = runner.partition(":")
        code = int(getattr(importlib.import_module(module), func)(spec) or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for f in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                f.flush()
    os._exit(code)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the parent closed the run's socket")
        buf += chunk
    return buf


def _handle(conn_fd: int, out_fd: int, chan_fd: int) -> None:
    """One run's handler (forked from the zygote, root in the host's namespaces); never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    conn = socket.socket(fileno=conn_fd)
    try:
        (n,) = struct.unpack("!I", _recv_exact(conn, 4))
        req = json.loads(_recv_exact(conn, n))
        bad = _hidden_loaded(req["hidden"])
        if bad:  # the zygote must never hold what a run must not see
            os.write(out_fd, f"aarlab zygote refuses: it loaded hidden files {bad[:3]}\n".encode())
            conn.sendall(json.dumps({"setup_ok": False, "status": SETUP_FAILED}).encode())
            os._exit(0)
        ready_r, ready_w = os.pipe()
        _ok(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                conn.detach()
                os.close(conn_fd)
                _run(req, out_fd, chan_fd, ready_w)
            finally:
                os._exit(SETUP_FAILED)
        for fd in (out_fd, chan_fd, ready_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        left = float(req["limits"]["wall_s"]) + 30
        r, _, _ = select.select([conn.fileno(), pidfd], [], [], left)
        killed = pidfd not in r
        if killed:  # a kill request, the parent gone, or far past the wall limit
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # pid 1 of its namespace: everything in it goes too
        _, status, usage = os.wait4(pid, 0)
        setup_ok = os.read(ready_r, 1) == b"1"
        msg = {
            "status": os.waitstatus_to_exitcode(status),
            "setup_ok": setup_ok,
            "killed": killed,
            "cpu_s": usage.ru_utime + usage.ru_stime,  # the run and everything it waited for
        }
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(msg).encode())
        # closed now: at _exit the kernel frees this fork's memory (exit_mm) before its descriptors, so
        # the parent would see the reply end only after a few ms of teardown
        conn.close()
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.write(2, f"aarlab zygote handler failed: {e!r}\n".encode())
    os._exit(0)


def lock_file_mappings() -> list[str]:
    """``mlock`` every readable mapping of a file in this process; what could not be locked.

    Files only: ``mlockall`` also faulted in every anonymous region a library had reserved (malloc
    arenas, BLAS buffers: 150 MB here), and every fork and exit of a run then copied and freed their
    page tables (a fork 3.6 -> 1.5 ms, an exit 7.5 -> 3.7 ms, measured in a process with the zygote's
    imports). Anonymous pages are each process's own: no run sees another's."""
    failed = []
    with open("/proc/self/maps", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or not parts[5].startswith("/") or parts[1].startswith("-"):
                continue  # anonymous, a pseudo-file ([heap], [stack], [vdso]) or not readable
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if _libc.mlock(lo, hi - lo) != 0:
                failed.append(f"mlock {parts[5].strip()}: {os.strerror(ctypes.get_errno())}")
    return failed


def serve(ctl_fd: int, preload: list[str], threads: int) -> None:
    """Preload, say ready, then fork one handler per request until the parent closes the socket."""
    while True:  # keep 0-3 taken so that received descriptors never land on a child's standard numbers
        fd = os.open("/dev/null", os.O_RDWR)
        if fd >= 4:
            os.close(fd)
            break
    failed = []
    for m in preload:
        try:
            importlib.import_module(m)
        except Exception as e:  # a missing optional module only makes runs import it themselves
            failed.append(f"{m}: {e!r}")
    _LOADED.extend(
        sorted(
            {
                os.path.realpath(f)
                for mod in list(sys.modules.values())
                if (f := getattr(mod, "__file__", None))
            }
        )
    )
    # Every object so far lives as long as the zygote: out of the collector's sight, so that a run's
    # collections do not write to (and copy) the pages of every preloaded module (Python's gc docs:
    # gc.freeze() before fork without exec).
    gc.collect()
    gc.freeze()
    # Runs inherit the zygote's mappings of host files (libraries, extension modules). Lock them in
    # memory: a page no run can make non-resident is a page through which no run can tell another
    # what it touched (the runs' own files are tmpfs copies; ``sandbox/image.py``).
    failed += lock_file_mappings()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    ctl = socket.socket(fileno=ctl_fd)
    ctl.sendall(
        json.dumps({"ready": True, "pid": os.getpid(), "failed": failed, "threads": threads}).encode()
    )
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 64, 3)
        except InterruptedError:
            continue
        if not msg:  # the parent is gone
            os._exit(0)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        for f in (sys.stdout, sys.stderr):
            f.flush()
        pid = os.fork()
        if pid == 0:
            try:
                ctl.close()
                _handle(*fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)


def main(argv: list[str]) -> int:
    ctl_fd, preload, threads = int(argv[0]), json.loads(argv[1]), int(argv[2])
    os.umask(0o077)
    serve(ctl_fd, preload, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
