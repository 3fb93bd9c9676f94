"""The runtime image: what a confined run of submitted code may read, as tmpfs copies no other process
reads from.

Why: runs of one verification (the real run and its ablations) and the agents' shell must not be able
to talk to each other. Any file two of them can both read is a channel through the page cache: run A
reads chosen pages of a large read-only file, a later run B asks which pages are cached — by
``/proc/self/io`` ``read_bytes``, major faults on an mmap'd page, or plain timing (about 10 µs cached
against 50 µs not). A seccomp filter cannot refuse counters and clocks (tests/REDTEAM_HOLES.md). So a
run sees no host file at all: its interpreter, standard library, the packages a method may import
(what the zygote preloads: numpy, scipy, scikit-learn and their imports), aarlab's source, the shared
libraries these load and a few ``/etc`` files are *copies on a tmpfs*. tmpfs pages are always resident
(there is no "not cached" state to set or observe; reads never touch storage, ``read_bytes`` stays 0,
no major faults), its dentries are pinned and it keeps no negative dentries, and the copies are bound
read-only, so atimes do not move either. The agents' shell keeps the host's view (it needs the
system's tools); it shares no file with a verification run. A zygote's own mappings of host files are
locked in memory (``sandbox/zygote.py``) for the same reason.

The image is built once per machine and content (sizes and mtimes of every file in it), under
``/run/aarlab/sandbox-image`` (a tmpfs this module mounts, in a folder only root can change), and
shared by every process that needs the same content: each holds a shared ``flock`` on the image's lock
file while it lives, and images nobody holds are removed when another is built. Cost on 2 cores: about
350 MB of RAM and 1–3 s to build (once), nothing per run.

Source of the idea: the read-only, per-sandbox root images of gVisor/Firecracker-style sandboxes, here
with util-linux and tmpfs only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from aarlab.sandbox.namespaces import ETC_FILES, SandboxUnavailable, python_roots, system_binds, trusted_dir

#: Bump when what goes into an image changes (old images then go unused and are swept).
FORMAT = 3
#: Standard-library folders no method needs (tests, GUI, installers): about 140 MB not copied.
STDLIB_SKIP = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "site-packages",
    "__phello__",
}
#: Binaries the exec path's setup script runs after ``pivot_root`` (and ``setpriv`` execs the run).
EXEC_TOOLS = ("setpriv", "mount", "umount", "rmdir")
#: Size cap of the tmpfs the images live on (a cap, not a reservation).
TMPFS_SIZE = "4g"

_LDD_PATH = re.compile(r"(/\S+)")
_lock = threading.Lock()
_images: dict[tuple[tuple[str, ...], tuple[str, ...]], RuntimeImage] = {}


class RuntimeImage:
    """A built image: ``path`` mirrors host paths (``path/usr/...``, ``path/<python root>/...``).

    ``ops()`` gives the ``(op, a, b)`` triples that bind it into a run's root in place of the host's
    ``/usr``, Python install and ``/etc`` files (``namespaces.setup_ops``). The object holds the image's
    shared lock while it lives (so no other process removes the image under a run)."""

    def __init__(self, path: Path, roots: Sequence[str], lock_fd: int) -> None:
        self.path = path
        self.roots = tuple(roots)
        self._lock_fd = lock_fd

    def ops(self) -> list[tuple[str, str, str]]:
        out: list[tuple[str, str, str]] = []
        for op, a, b in system_binds():
            if op == "link":
                out.append((op, a, b))
                continue
            copy = self.path / b.lstrip("/")
            if copy.is_symlink():  # a link stays a link: a bind would follow it to the host's file
                out.append(("link", os.readlink(copy), b))
            elif copy.exists():
                out.append(("ro", str(copy), b))
        for r in self.roots:
            if (self.path / r.lstrip("/")).is_dir():
                out.append(("ro", str(self.path / r.lstrip("/")), r))
        return out


def image_root() -> Path:
    """The tmpfs the images live on (``/run/aarlab/sandbox-image``, a folder only root can change),
    mounted on first use. Raises ``SandboxUnavailable`` when the folder is not root's alone."""
    p = trusted_dir("sandbox-image")
    if not os.path.ismount(p):
        opts = f"size={TMPFS_SIZE},mode=755,nosuid,nodev"
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "aarlab-image", str(p)], check=True, capture_output=True
        )
    st = os.lstat(p)
    if not os.path.ismount(p) or st.st_uid != 0 or st.st_mode & 0o022:
        raise SandboxUnavailable(f"{p} is not a root-owned tmpfs after mounting it")
    return p


def runtime_image(preload: Sequence[str], hidden: Iterable[str | Path] = ()) -> RuntimeImage:
    """The image for runs that may import ``preload`` (built or reused; cached per process).

    ``hidden``: host paths never copied (ground truth, model weights); the run's hide ops still cover
    them too. Raises ``OSError``/``subprocess.CalledProcessError`` when the tmpfs cannot be mounted or
    the listing interpreter fails (the caller falls back to refusing the run, never to the host view).
    """
    hid = tuple(sorted(str(Path(h).resolve()) for h in hidden))
    key = (tuple(preload), hid)
    with _lock:
        img = _images.get(key)
        if img is None or not img.path.is_dir():
            img = _images[key] = _build(tuple(preload), hid)
        return img


def _listing(root: Path, preload: tuple[str, ...]) -> dict[str, list[str]]:
    """Module files and mapped files of an interpreter that imported ``preload`` (cached on disk by what
    could change them: the interpreter, the preload list, the package folders and aarlab's source)."""
    import aarlab

    src = Path(aarlab.__file__).resolve().parent
    h = hashlib.sha256(json.dumps([FORMAT, sys.executable, list(preload)]).encode())
    paths = sysconfig.get_paths()
    for d in {paths["purelib"], paths["platlib"], paths["stdlib"]}:
        h.update(f"{d}:{os.stat(d).st_mtime_ns}".encode())
    for f in sorted(src.rglob("*.py")):
        h.update(f"{f}:{f.stat().st_mtime_ns}".encode())
    cache = root / f"listing-{h.hexdigest()[:20]}.json"
    for old in root.glob("listing-*.json"):  # listings of other sources or package sets
        if old != cache and old.stat().st_mtime < time.time() - 3600:
            old.unlink(missing_ok=True)
    if cache.exists():
        data: dict[str, list[str]] = json.loads(cache.read_text())
        return data
    code = (
        "import ctypes, importlib, json, sys\n"
        f"for m in {list(preload)!r}:\n"
        "    try: importlib.import_module(m)\n"
        "    except Exception: pass\n"
        "try: ctypes.CDLL('libseccomp.so.2')\n"
        "except OSError: pass\n"
        "files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, '__file__', None))})\n"
        "maps = sorted({l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if l.count(' ') >= 5 "
        "and '/' in l})\n"
        "import importlib.metadata as md\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        "dists = sorted({d for t, ds in md.packages_distributions().items() if t in tops for d in ds})\n"
        "maps = [m for m in maps if m.startswith('/')]\n"
        "print(json.dumps({'files': files, 'maps': maps, 'dists': dists}))\n"
    )
    argv = [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(src.parent)!r})\n" + code]
    env = {"PATH": os.environ.get("PATH", ""), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(argv, capture_output=True, check=True, timeout=300, env=env)
    data = json.loads(out.stdout)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, cache)
    return data


def _ldd(paths: Iterable[str]) -> set[str]:
    """Shared libraries (and the ELF interpreter) the given executables and libraries load."""
    out: set[str] = set()
    paths = [p for p in paths if os.path.isfile(p)]
    for i in range(0, len(paths), 64):
        r = subprocess.run(["ldd", *paths[i : i + 64]], capture_output=True, text=True, timeout=120)
        for line in r.stdout.splitlines():
            if "=>" in line:
                line = line.split("=>", 1)[1]
            m = _LDD_PATH.search(line)
            if m and not line.rstrip().endswith(":"):
                out.add(m.group(1))
    return out


def _walk(top: Path, skip_dirs: frozenset[str] | set[str] = frozenset()) -> Iterable[Path]:
    """Every file (and symlinked folder) under ``top``, not descending into ``skip_dirs``."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for n in filenames:
            yield Path(dirpath) / n
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                yield Path(dirpath) / d


def _select(listing: dict[str, list[str]], hidden: tuple[str, ...]) -> tuple[list[str], set[str]]:
    """(python roots, every host path the image holds). Paths may be symlinks; ``_copy`` follows."""
    import aarlab

    roots = [str(r) for r in python_roots()]
    paths: dict[str, str] = sysconfig.get_paths()
    site = {Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()}
    stdlib = Path(paths["stdlib"]).resolve()
    picked: set[str] = set()
    # the standard library, less tests, GUI and installers
    skip = STDLIB_SKIP | {d.name for d in stdlib.glob("config-*")}
    picked.update(map(str, _walk(stdlib, skip)))
    # aarlab's own package (the source folder of an editable install, or its site-packages folder)
    picked.update(map(str, _walk(Path(aarlab.__file__).resolve().parent, {"tests"})))
    # in site-packages: the top-level entries the preloaded modules came from, with their bundled libs
    tops: set[tuple[Path, str]] = set()
    for f in listing["files"]:
        rf = Path(f).resolve()
        for s in site:
            if rf.is_relative_to(s):
                tops.add((s, rf.relative_to(s).parts[0]))
    # their distributions' metadata and bundled libraries (numpy.libs, scikit_learn.libs, ...)
    dists = {re.sub(r"[-_.]+", "_", d).lower() for d in listing["dists"]}
    for s in site:
        for e in s.iterdir():
            stem = re.sub(r"[-_.]+", "_", e.name.split("-")[0].removesuffix(".libs")).lower()
            if stem in dists and (e.name.endswith(".libs") or e.name.endswith(".dist-info")):
                tops.add((s, e.name))
    for s, name in tops:
        e = s / name
        picked.update(map(str, _walk(e, {"tests"})) if e.is_dir() else [str(e)])
    # the interpreter, what everything loaded maps, the exec path's tools and their libraries
    exe = [sys.executable, os.path.realpath(sys.executable)]
    tools = [t for t in (shutil.which(x, path="/usr/sbin:/usr/bin:/sbin:/bin") for x in EXEC_TOOLS) if t]
    picked.update(exe, tools, listing["maps"], listing["files"])
    # the names a loader asks for (``libseccomp.so.2``, opened by name at run time) are links to them
    mapped = {os.path.realpath(m) for m in listing["maps"]}
    for d in {os.path.dirname(m) for m in listing["maps"]}:
        with contextlib.suppress(OSError), os.scandir(d) as it:
            picked.update(e.path for e in it if e.is_symlink() and os.path.realpath(e.path) in mapped)
    for name in ETC_FILES:
        p = Path("/etc") / name
        if name == "alternatives":  # the host's choice of tools; a Python run needs none of them
            continue
        picked.update(map(str, _walk(p)) if p.is_dir() else [str(p)])
    locale = Path("/usr/lib/locale")
    if locale.is_dir():
        picked.update(str(p) for p in _walk(locale) if "C." in str(p.relative_to(locale)).split("/")[0])
    for p in (Path(r) / "pyvenv.cfg" for r in roots):
        if p.exists():
            picked.add(str(p))
    # never ground truth or weights, never aarlab's test data or caches
    keep = {p for p in picked if not _under(p, hidden)}
    return roots, {p for p in keep if "__pycache__" not in p or p.endswith(".pyc")}


def _under(p: str, tops: Iterable[str]) -> bool:
    return any(p == h or p.startswith(h.rstrip("/") + "/") for h in tops)


def _copy(paths: Iterable[str], dest: Path, hidden: tuple[str, ...]) -> None:
    """Copy each host path into ``dest`` at the same absolute path: symlinks (of the path and of the
    folders on the way) stay symlinks, so the run's view resolves them as the host does. Nothing under
    ``hidden`` is copied, whichever link leads there."""
    done: set[str] = set()

    def put(p: str) -> None:
        if p in done or p == "/" or _under(p, hidden) or _under(os.path.realpath(p), hidden):
            return
        done.add(p)
        parent, _ = os.path.split(p)
        put(parent)
        target = dest / p.lstrip("/")
        if os.path.islink(p):
            link = os.readlink(p)
            if not target.is_symlink():
                target.symlink_to(link)
            put(os.path.normpath(os.path.join(parent, link)))
        elif os.path.isdir(p):
            target.mkdir(mode=0o755, exist_ok=True)
        elif os.path.isfile(p):
            shutil.copy2(p, target, follow_symlinks=False)  # with its mtime: cached bytecode stays valid
            os.chmod(target, 0o755 if os.access(p, os.X_OK) else 0o644)

    for p in sorted(paths):
        put(os.path.normpath(p))


def _placeholders(dest: Path, roots: Sequence[str], hidden: tuple[str, ...]) -> None:
    """An empty folder (or file) where a hidden path lies inside a copied tree, as on the host: the run's
    hide op covers it with a mode-000 tmpfs, so looking for ground truth still meets "permission
    denied" (and the audit flag) rather than a path that is simply not there."""
    for h in hidden:
        if not any(_under(h, [r]) for r in roots) or not os.path.lexists(h):
            continue
        target = dest / h.lstrip("/")
        with contextlib.suppress(OSError):
            if os.path.isdir(h):
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
            else:
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                target.touch(mode=0o644)


def _content_key(paths: set[str], roots: list[str]) -> str:
    h = hashlib.sha256(json.dumps([FORMAT, roots]).encode())
    for p in sorted(paths):
        if p.endswith(".pyc"):  # checked against its source's mtime at import: a stale one only costs time
            continue
        try:
            st = os.lstat(p)
        except OSError:
            continue
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return h.hexdigest()[:24]


def _build(preload: tuple[str, ...], hidden: tuple[str, ...]) -> RuntimeImage:
    root = image_root()
    roots, paths = _select(_listing(root, preload), hidden)
    key = _content_key(paths, [*roots, *hidden])
    lock_fd = os.open(root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_SH)  # held while this process lives: nobody removes it under us
    final = root / key
    build_fd = os.open(root / ".build.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(build_fd, fcntl.LOCK_EX)
        if not final.is_dir():
            part = root / f"{key}.partial-{os.getpid()}"
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir(mode=0o755)
            # the libraries every executable and extension module in it loads, by the names the loader
            # asks for (``libstdc++.so.6``, a link): /etc/ld.so.cache is in the key, so a changed system
            # library changes the image
            elf = [p for p in paths if ".so" in os.path.basename(p) or os.access(p, os.X_OK)]
            _copy(paths | _ldd(sorted(elf)), part, hidden)
            _placeholders(part, roots, hidden)
            os.replace(part, final)
        _sweep(root, keep=key)
    finally:
        os.close(build_fd)
    return RuntimeImage(final, roots, lock_fd)


def _sweep(root: Path, keep: str) -> None:
    """Remove images (and half-built ones) no living process holds."""
    for lock in root.glob("*.lock"):
        name = lock.name[: -len(".lock")]
        if name in (keep, ".build"):
            continue
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        shutil.rmtree(root / name, ignore_errors=True)
        for part in root.glob(f"{name}.partial-*"):
            shutil.rmtree(part, ignore_errors=True)
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)
