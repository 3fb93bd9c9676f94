"""A seccomp filter for confined runs: the kernel refuses system calls submitted code never needs.

Loaded through libseccomp (``libseccomp.so.2``, part of Debian's base system) with ctypes, inside the
confined child, before any untrusted code runs; once loaded it cannot be removed. It denies (EPERM)
debugging and reading other processes (``ptrace``, ``process_vm_readv``/``writev``), changing mounts or
namespaces (``mount``, ``umount2``, ``pivot_root``, ``unshare``, ``setns``, ``clone`` with a
namespace flag), kernel keyrings, BPF, perf events, module loading, ``io_uring``, ``userfaultfd``, and
the direct questions to the page cache (``preadv2`` with ``RWF_NOWAIT``, ``cachestat``). Those two are
not the barrier: counters and timing would answer them too, so verification runs share no page-cached
file (``sandbox/image.py``). The namespaces already make most of these useless to an unprivileged uid;
the filter shrinks the kernel surface left to attack. Where libseccomp is missing the run goes on
without it (the namespaces and the uid are the barrier) and says so.

``python -m aarlab.sandbox.seccomp -- CMD ARGS...`` loads the filter and execs the command (the agents'
shell runs every command through it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

#: System calls a method or a shell command has no business making.
DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "cachestat",
    # every setsid() anywhere moves a host-wide counter (/proc/self/autogroup): a run is its own session
    # leader before this filter loads and needs no other session
    "setsid",
)
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_MASKED_EQ = 7
#: clone() flags that create namespaces (a user namespace would make the method "root" in it).
_CLONE_NEW = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


#: preadv2's "only if cached" flag (linux/fs.h).
RWF_NOWAIT = 0x00000008
#: Numbers of denied calls that an older libseccomp cannot resolve by name (cachestat, Linux 6.5: 451 on
#: every architecture with the unified syscall table, x86-64 and arm64 included).
FALLBACK_NR = {"cachestat": 451}


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0x0000FFFF)


def _load_library() -> ctypes.CDLL | None:
    """libseccomp by its soname (a plain ``dlopen``), else wherever ``find_library`` says. Loaded once,
    at import: ``find_library`` runs ``ldconfig -p`` and ``ld`` as subprocesses (~25 ms, more than half
    of a bare confined run when every run paid it); the zygote imports this module before it forks."""
    try:
        return ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        pass
    name = ctypes.util.find_library("seccomp")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


_LIBRARY = _load_library()


def install() -> str:
    """Load the filter into this process (inherited by its children). Returns '' when loaded, else why
    not (never raises: the caller records it as evidence)."""
    lib = _LIBRARY
    if lib is None:
        return "libseccomp is not installed"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        return "seccomp_init failed"
    try:
        for call in DENIED:
            nr = lib.seccomp_syscall_resolve_name(call.encode())
            nr = nr if nr >= 0 else FALLBACK_NR.get(call, -1)
            if nr < 0:  # not on this architecture
                continue
            if lib.seccomp_rule_add(ctx, _errno_action(errno.EPERM), nr, 0) != 0:
                return f"seccomp_rule_add({call}) failed"
        # clone() with a namespace flag: refused (clone3 hides its flags in memory: ENOSYS makes libc
        # fall back to clone, where the flags can be checked)
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in _CLONE_NEW.values():
            cmp = _ArgCmp(0, _SCMP_CMP_MASKED_EQ, flag, flag)
            if clone >= 0 and lib.seccomp_rule_add_array(ctx, _errno_action(errno.EPERM), clone, 1, cmp) != 0:
                return "seccomp_rule_add(clone) failed"
        # page-cache probes, a covert channel between runs (one run reads chosen pages of a big
        # read-only file, a later run of another uid asks which are cached): preadv2 with RWF_NOWAIT
        # answers EOPNOTSUPP (callers fall back to a plain read); cachestat is in DENIED
        nowait = _ArgCmp(5, _SCMP_CMP_MASKED_EQ, RWF_NOWAIT, RWF_NOWAIT)
        preadv2 = lib.seccomp_syscall_resolve_name(b"preadv2")
        no_cache_probe = _errno_action(errno.EOPNOTSUPP)
        if preadv2 >= 0 and lib.seccomp_rule_add_array(ctx, no_cache_probe, preadv2, 1, nowait) != 0:
            return "seccomp_rule_add(preadv2) failed"
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0 and lib.seccomp_rule_add(ctx, _errno_action(errno.ENOSYS), clone3, 0) != 0:
            return "seccomp_rule_add(clone3) failed"
        if lib.seccomp_load(ctx) != 0:
            return "seccomp_load failed (no_new_privs not set?)"
    finally:
        lib.seccomp_release(ctx)
    return ""


def main(argv: list[str]) -> int:
    """``python -m aarlab.sandbox.seccomp -- CMD ARGS...``: load the filter, exec the command."""
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m aarlab.sandbox.seccomp -- CMD [ARGS...]", file=sys.stderr)
        return 2
    why = install()
    if why:
        print(f"aarlab sandbox: seccomp filter not loaded ({why})", file=sys.stderr)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"{argv[0]}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
