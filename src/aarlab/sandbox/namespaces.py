"""Build the kernel confinement every run of submitted code gets (verification, ablations, gate suites,
the agents' shell): a fresh root made of explicit read-only binds, an unprivileged uid, new namespaces.

The child sees only what a :class:`Confinement` lists. The setup script runs as root inside new mount,
pid, net, ipc and uts namespaces (``unshare``): it mounts an empty tmpfs as the new root, binds the
system (``/usr``, a few ``/etc`` files), the Python install and aarlab's source read-only, binds the
run's own folders (read-only or writable), covers every *hidden* path that falls inside a bound tree
(packages that hold a task's ground truth) with an empty mode-000 tmpfs, mounts a fresh ``/proc`` (only
the child's own processes), a minimal ``/dev`` and a private ``/tmp``, ``pivot_root``s into it and
detaches the old root, then execs the command through ``setpriv`` as a uid that owns nothing on the
host, with no capabilities, an empty bounding set and ``no_new_privs``. What a method cannot see it
cannot read, link, poison or kill; what is bound read-only it cannot rewrite. Python audit hooks in
the child are telemetry on top of this, never the barrier.

Source of the design: the layering of bubblewrap/nsjail (fresh root + binds + pivot_root + uid drop),
with util-linux's ``unshare``/``pivot_root``/``setpriv`` so nothing beyond Debian's base is needed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from aarlab.testbed.errors import AarlabError

#: Exit code of the setup script when a mount failed (the command did not run).
SETUP_FAILED = 97
#: First uid handed to confined runs; each run gets a fresh one above it (no host file is theirs).
UID_BASE = 200_000
#: Files of /etc a Python program or a shell tool may need (never the whole of /etc).
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "localtime",
    "hosts",
    "alternatives",
    "ssl/openssl.cnf",
)

INSECURE_ENV = "AARLAB_INSECURE_SANDBOX"


class SandboxUnavailable(AarlabError):
    """The kernel refuses the namespaces confinement needs (and the operator did not opt out)."""


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside the sandbox at ``target`` (read-only unless ``writable``)."""

    source: Path
    target: str
    writable: bool = False
    #: The folder exists for this run alone (its bundle): bound as it is. Any other read-only folder
    #: is copied per run by the verifier, so no two runs read the same file (see ``sandbox/image.py``).
    private: bool = False


@dataclass(frozen=True)
class Confinement:
    """What a confined process sees. Anything not listed does not exist for it.

    ``binds``: the run's own folders (a method, a bundle, an agent's sandbox). ``hidden``: host paths
    that must stay invisible even where they fall inside a bound tree (a package holding labels inside
    the Python install). ``scratch``: private writable tmpfs folders owned by the run's uid, in MB.
    ``system``: the ``(op, a, b)`` triples that give the run its system and Python install; None binds
    the host's own (the agents' shell), a runtime image's ``ops()`` binds tmpfs copies instead
    (verification, whose runs must share no page-cached file; ``sandbox/image.py``).
    """

    binds: tuple[Bind, ...] = ()
    hidden: tuple[Path, ...] = ()
    scratch: tuple[tuple[str, int], ...] = (("/tmp", 512),)
    cwd: str = "/tmp"
    uid: int = field(default_factory=lambda: UID_BASE + secrets.randbelow(1_000_000))
    system: tuple[tuple[str, str, str], ...] | None = None


def python_roots() -> list[Path]:
    """The interpreter, its standard library, the venv's packages and aarlab's own source folder."""
    import aarlab

    roots = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(Path(p))
    roots.add(Path(aarlab.__file__).resolve().parent.parent)  # src/ of an editable install
    exe = Path(sys.executable)
    roots.add(exe.resolve().parent.parent)
    out: list[Path] = []
    for r in sorted({p.resolve() for p in roots if p.exists()}, key=lambda p: len(p.parts)):
        if not any(r.is_relative_to(o) for o in out):
            out.append(r)
    return out


def system_binds() -> list[tuple[str, str, str]]:
    """(op, a, b) triples for the system part of the root: /usr, the merged-/usr links, /etc files."""
    ops: list[tuple[str, str, str]] = []
    for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        p = Path("/") / top
        if p.is_symlink():
            ops.append(("link", os.readlink(p), f"/{top}"))
        elif p.is_dir():
            ops.append(("ro", str(p), f"/{top}"))
    for name in ETC_FILES:
        p = Path("/etc") / name
        if p.exists():
            ops.append(("ro", str(p.resolve()) if not p.is_symlink() else str(p), f"/etc/{name}"))
    return ops


_SETUP = r"""
set -u
R=$1; uid=$2; cwd=$3; shift 3
child_path=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
SETPRIV=$(command -v setpriv)
fail() { echo "aarlab sandbox setup failed: $*" >&2; exit 97; }
mkdir -p "$R" || fail "cannot create $R"
mount -t tmpfs -o size=8m,mode=755 aarlab-root "$R" || fail "cannot mount the new root"
while [ "$1" != "--" ]; do
  op=$1; a=$2; b=$3; shift 3
  case "$op" in
    ro|rw)
      if [ -d "$a" ]; then mkdir -p "$R$b" || fail "mkdir $b"
      else mkdir -p "$(dirname "$R$b")" && : > "$R$b" || fail "touch $b"; fi
      mount --bind "$a" "$R$b" || fail "cannot bind $a"
      if [ "$op" = ro ]; then mount -o remount,bind,ro,nosuid,nodev "$R$b" || fail "cannot make $b read-only"
      else mount -o remount,bind,nosuid,nodev "$R$b" || fail "cannot remount $b"; fi ;;
    hide)
      if [ -d "$R$a" ] && [ ! -L "$R$a" ]; then
        mount -t tmpfs -o size=4k,mode=000,ro aarlab-hidden "$R$a" || fail "cannot hide $a"
      elif [ -e "$R$a" ]; then mount --bind /dev/null "$R$a" || fail "cannot hide $a"; fi ;;
    link) mkdir -p "$(dirname "$R$b")" && ln -s "$a" "$R$b" || fail "cannot link $b" ;;
    scratch)
      mkdir -p "$R$a" || fail "mkdir $a"
      mount -t tmpfs -o "size=${b}m,mode=700,uid=$uid,gid=$uid,nosuid,nodev" aarlab-scratch "$R$a" \
        || fail "cannot mount scratch $a" ;;
    *) fail "unknown op $op" ;;
  esac
done
shift
mkdir -p "$R/proc" "$R/dev" "$R/tmp" "$R/.old" || fail "mkdir"
mount -t proc -o ro,nosuid,nodev,noexec,subset=pid,hidepid=invisible proc "$R/proc" \
  || mount -t proc -o ro,nosuid,nodev,noexec proc "$R/proc" || fail "cannot mount /proc"
mount -t tmpfs -o size=64k,mode=755,nosuid aarlab-dev "$R/dev" || fail "cannot mount /dev"
for n in null zero full random urandom; do
  : > "$R/dev/$n" && mount --bind "/dev/$n" "$R/dev/$n" || fail "cannot bind /dev/$n"
done
ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mkdir -p "$R/dev/shm" && mount -t tmpfs -o size=256m,mode=1777,nosuid,nodev aarlab-shm "$R/dev/shm" \
  || fail "cannot mount /dev/shm"
if ! mountpoint -q "$R/tmp"; then
  mount -t tmpfs -o size=512m,mode=1777,nosuid,nodev aarlab-tmp "$R/tmp" || fail "cannot mount /tmp"
fi
cd "$R" || fail "cd root"
pivot_root . .old || fail "pivot_root"
umount -l /.old || fail "cannot detach the old root"
rmdir /.old
mount -o remount,bind,ro / || fail "cannot make / read-only"
cd "$cwd" || fail "cannot enter $cwd"
PATH=$child_path
exec "$SETPRIV" --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
  --bounding-set=-all --inh-caps=-all -- "$@"
"""


#: Where the sandbox keeps its own state on the host (the runs' root mountpoint, the runtime image):
#: a folder only root can change, never a world-writable one such as /tmp, where another user could
#: plant a link under the name before the first run (the red team did, and took over the image).
STATE_DIR = Path("/run/aarlab")
#: ``/proc`` options for a run: its processes only, none of the host-wide counters (``/proc/vmstat``,
#: ``meminfo``, ``stat``, ``sys``, ``pressure``: a run moving one and a later run reading it is a
#: channel between them; Linux >= 5.8, older kernels get a plain ``/proc``). Mounted read-only: a run
#: that could write ``/proc/self/autogroup`` would undo its niceness, and the kernel's host-wide rate
#: limit on those writes (EAGAIN within 100 ms of any other) is a channel between overlapping runs.
PROC_OPTIONS = "subset=pid,hidepid=invisible"


def trusted_dir(name: str) -> Path:
    """``STATE_DIR/name``, made if missing, each level checked to be a real folder (not a link) owned by
    root and writable by root only. Raises :class:`SandboxUnavailable` otherwise, naming the path."""
    out = STATE_DIR / name
    for p in (STATE_DIR.parent, STATE_DIR, out):
        if p != STATE_DIR.parent:
            with contextlib.suppress(FileExistsError):
                os.mkdir(p, 0o755)
        st = os.lstat(p)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise SandboxUnavailable(
                f"{p} must be a folder (not a link) owned by root and writable by root only; "
                "remove it (or fix its owner and mode) and run again"
            )
    return out


def _root_mountpoint() -> Path:
    """An empty host folder each run mounts its own private root on (inside its own mount namespace)."""
    return trusted_dir("sandbox-root")


def confined_argv(conf: Confinement, argv: Sequence[str]) -> list[str]:
    """The command line that runs ``argv`` inside ``conf`` (raises if namespaces are unavailable)."""
    missing = namespace_support()
    if missing:
        raise SandboxUnavailable(missing)
    flat = [x for op in setup_ops(conf) for x in op]
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare, "--mount", "--pid", "--net", "--ipc", "--uts", "--cgroup", "--fork", "--kill-child",
        "--propagation", "private",
        "/bin/sh", "-c", _SETUP, "aarlab-setup", str(_root_mountpoint()), str(conf.uid), conf.cwd,
        *flat, "--", *argv,
    ]  # fmt: skip


def setup_ops(conf: Confinement) -> list[tuple[str, str, str]]:
    """The (op, a, b) list that builds ``conf``'s root, in order: ``scratch``, ``ro``/``rw`` binds,
    ``link``s and ``hide``s. The setup script (exec path) and the zygote (``sandbox/zygote.py``) both
    build their root from this one list, so the two paths cannot drift apart."""
    # scratch first: a bind that lies under a scratch folder (a sandbox under /tmp) must stay on top
    ops: list[tuple[str, str, str]] = [("scratch", t, str(int(mb))) for t, mb in conf.scratch]
    if conf.system is None:
        ops += system_binds()
        ops += [("ro", str(r), str(r)) for r in python_roots()]
    else:
        ops += conf.system
    for b in conf.binds:
        ops.append(("rw" if b.writable else "ro", str(Path(b.source).resolve()), b.target))
    # targets compared as normalised paths: "/x/./gt" or "/x//gt" mount at /x/gt, and a hidden file
    # under them must be found as under /x/gt (a string prefix of the raw target would miss it)
    # (normpath keeps a leading "//", which POSIX allows to mean something else; Linux does not)
    targets = [os.path.normpath(t).strip("/") for op, _, t in ops if op in ("ro", "rw")]
    seen = [f"/{t}/" if t else "/" for t in targets]
    for h in conf.hidden:  # hidden where it falls inside a tree the run sees at its host path
        path = os.path.realpath(h)
        if any((path + "/").startswith(t) for t in seen):
            ops.append(("hide", path, "-"))
    return ops


def root_mountpoint() -> str:
    """The host folder each run mounts its private root on (inside its own mount namespace)."""
    return str(_root_mountpoint())


def module_argv(module: str, *args: str) -> list[str]:
    """``python -I -m module args...`` that imports *this* process's aarlab (the source folder
    :func:`python_roots` binds), not whichever one the interpreter's path files name: a checkout run
    with ``PYTHONPATH`` would otherwise run another tree's code in the child (or none, unbound)."""
    import aarlab

    src = str(Path(aarlab.__file__).resolve().parent.parent)
    boot = (
        f"import sys, runpy; sys.path.insert(0, {src!r}); runpy.run_module({module!r}, run_name='__main__')"
    )
    return [sys.executable, "-I", "-c", boot, *args]


@lru_cache(maxsize=1)
def namespace_support() -> str:
    """'' when this machine can build the confinement; otherwise what is missing (probed once)."""
    for tool in ("unshare", "setpriv", "pivot_root", "mountpoint"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"`{tool}` (util-linux) is not installed"
    if os.geteuid() != 0:
        return (
            "confinement needs root to create mount/pid/net namespaces and switch to an unprivileged uid "
            f"(running as uid {os.geteuid()})"
        )
    conf = Confinement(binds=(), hidden=())
    try:
        argv = _probe_argv(conf)
        proc = subprocess.run(argv, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the namespace probe failed to run ({e})"
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or out != str(conf.uid):
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return "the kernel refused the namespaces: " + (err[-1] if err else f"exit code {proc.returncode}")
    return ""


def _probe_argv(conf: Confinement) -> list[str]:
    ops = [x for op in system_binds() for x in op]
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare, "--mount", "--pid", "--net", "--ipc", "--uts", "--cgroup", "--fork", "--kill-child",
        "--propagation", "private",
        "/bin/sh", "-c", _SETUP, "aarlab-setup", str(_root_mountpoint()), str(conf.uid), "/",
        *ops, "--", "/usr/bin/id", "-u",
    ]  # fmt: skip


def insecure_allowed() -> bool:
    """Whether the operator explicitly allowed running submitted code without the kernel confinement."""
    return os.environ.get(INSECURE_ENV, "") == "1"


def require_confinement(what: str) -> bool:
    """True when confinement is available; False when it is not but the operator allowed insecure
    runs (logged loudly); raises :class:`SandboxUnavailable` otherwise, naming what is missing."""
    missing = namespace_support()
    if not missing:
        return True
    if insecure_allowed():
        print(
            f"WARNING: {what} runs submitted code WITHOUT kernel confinement ({missing}); "
            f"{INSECURE_ENV}=1 is set. Labels are protected only by Python audit hooks, which a method "
            "can switch off. Never do this with untrusted agents.",
            file=sys.stderr,
            flush=True,
        )
        return False
    raise SandboxUnavailable(
        f"{what} refuses to run submitted code: {missing}. Run it as root on Linux with util-linux "
        f"(unshare, setpriv, pivot_root), or for local experiments with trusted code only set "
        f"{INSECURE_ENV}=1 (insecure: a method can then read labels)."
    )
