"""No covert channel between runs through shared state (tests/REDTEAM_HOLES.md): the page cache, host-wide
counters, and the sandbox's own state on the host.

Run A reads chosen pages of a file every run can read; a later run B, another uid, asks which pages are
resident — by ``/proc/self/io`` ``read_bytes``, by major faults through a mapping, or by timing. The
red team read 16 of 16 bits this way on both paths. Runs now see only tmpfs copies (``sandbox/image.py``:
always resident, no storage reads) and per-run copies of their method folder, so there is nothing to ask.
Both paths: the zygote's forked runs and the exec path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from aarlab.sandbox import Bind, Limits
from aarlab.sandbox import namespaces as ns
from aarlab.sandbox import zygote_client as zc
from aarlab.sandbox.image import image_root
from aarlab.sandbox.namespaces import SandboxUnavailable, namespace_support, trusted_dir
from aarlab.verify.audit import AuditPolicy, default_read_roots
from aarlab.verify.sandbox import SANDBOX, run_sandboxed

pytestmark = pytest.mark.skipif(bool(namespace_support()), reason="kernel confinement unavailable")

MESSAGE = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0]


@pytest.fixture(params=["zygote", "exec"])
def path(request, monkeypatch):
    zc.shutdown()
    if request.param == "exec":
        monkeypatch.setenv(zc.ZYGOTE_ENV, "0")
    else:
        monkeypatch.delenv(zc.ZYGOTE_ENV, raising=False)
    yield request.param
    zc.shutdown()


def _run(entry: str, binds: tuple[Bind, ...] = (), **kwargs):
    policy = AuditPolicy(sandbox=SANDBOX, read_roots=default_read_roots())
    out = run_sandboxed(
        f"aarlab.verify.probes:{entry}", kwargs, binds=binds, policy=policy, limits=Limits(wall_s=120)
    )
    assert out.status == "ok", out.detail
    return out.result


def _carrier() -> Path:
    """A sizeable file of the Python install every run can read and nothing has mapped."""
    import scipy

    files = [
        p
        for p in Path(scipy.__file__).parent.rglob("*.py")
        if "tests" not in p.parts and p.stat().st_size > 80_000
    ]
    return max(files, key=lambda p: p.stat().st_size)


def test_a_later_run_cannot_tell_which_pages_an_earlier_run_read(path):
    carrier = _carrier()
    pages = [4 * i for i in range(len(MESSAGE))]
    assert carrier.stat().st_size > pages[-1] * 4096
    fd = os.open(carrier, os.O_RDONLY)  # start cold on the host: the old view showed exactly this file
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    sent = [p for p, bit in zip(pages, MESSAGE, strict=True) if bit]
    assert _run("touch_pages", path=str(carrier), pages=sent) == len(sent)
    got = _run("storage_reads", path=str(carrier), pages=pages)
    # a page the sender read would cost nothing, one it did not would be fetched: here nothing is
    assert got["read_bytes"] == [0] * len(pages), got
    assert got["majflt"] == [0] * len(pages), got


def test_nothing_a_run_can_read_comes_from_a_shared_page_cache(path):
    import numpy
    import sklearn

    # what every run imports: the interpreter, the standard library and the preloaded packages
    expect = sorted(
        os.path.realpath(p) for p in (sys.executable, os.__file__, numpy.__file__, sklearn.__file__)
    )
    got = _run("visible_storage_reads", skip=["/sandbox", "/tmp"], expect=expect)
    assert got["expected_read"] == expect, got
    assert got["files"] > 1000, got  # the stdlib alone is ~1,000 files (a fresh venv: ~2,600 in all)
    assert got["read_bytes"] == 0, got
    assert got["other_mounts"] == [], got


def test_runs_of_one_result_read_their_own_copy_of_the_method(path, tmp_path):
    """The method folder is the same for the real run and every ablation: each run gets its own copy,
    so pages one run reads say nothing to the next (the same channel through the submitted files)."""
    method = tmp_path / "method"
    method.mkdir()
    code = "".join(f"x{i} = {i}\n" for i in range(40_000))
    (method / "method.py").write_text(code)
    binds = (Bind(method, f"{SANDBOX}/method"),)
    inside = f"{SANDBOX}/method/method.py"
    host = method.joinpath("method.py").stat()
    assert _run("stat_file", binds=binds, path=inside) != [host.st_dev, host.st_ino]
    fd = os.open(method / "method.py", os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    pages = [4 * i for i in range(len(MESSAGE))]
    assert host.st_size > pages[-1] * 4096
    sent = [p for p, bit in zip(pages, MESSAGE, strict=True) if bit]
    assert _run("touch_pages", binds=binds, path=inside, pages=sent) == len(sent)
    got = _run("storage_reads", binds=binds, path=inside, pages=pages)
    assert got["read_bytes"] == [0] * len(pages), got
    assert code.startswith(_run("read_file", binds=binds, path=inside)[:100])  # the same content


def test_a_run_reads_no_host_wide_counter(path):
    """/proc/vmstat carried 16 bits between runs (``thp_split_pmd``: a sender moves it to the message mod
    2^16, a later run reads it; 639/640 bits), ``unevictable_pgs_mlocked`` likewise. A run's /proc holds
    its own processes only, and it cannot lock memory."""
    got = _run("host_counters")
    assert got["visible"] == [], got  # vmstat, meminfo, stat, loadavg, sys, pressure, ...
    assert set(got["proc"]) <= {"self", "thread-self"}, got
    assert got["memlock"] == [0, 0]
    assert got["self_status"] and got["cpu_count"] >= 1 and got["fit"] > 0.9  # ordinary code still runs


def test_a_run_cannot_move_the_session_counter_or_see_its_cgroup_path(path):
    """The second red team: 300 fork()+setsid() in a run moved /proc/self/autogroup (host-wide) by +301
    for the next run (+1 to +2 otherwise); and /proc/self/cgroup showed the host's cgroup path."""
    got = _run("session_and_cgroup")
    assert got["setsid"] == "EPERM", got
    assert got["cgroup"] == ["/"], got  # a cgroup namespace rooted at the run's own cgroup


def test_the_sandbox_state_is_where_only_root_can_change_it(tmp_path, monkeypatch):
    """The image lived under /tmp: another user planted a link under its name first, root mounted the
    image's tmpfs over the link's target, and the user then swapped in an image of their own that every
    later run executed. The state folder must be a real folder, root's, writable by root only."""
    assert image_root().is_relative_to(ns.STATE_DIR)
    assert not ns.STATE_DIR.is_relative_to("/tmp")
    monkeypatch.setattr(ns, "STATE_DIR", tmp_path / "state")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SandboxUnavailable, match="not a link"):
        trusted_dir("sandbox-image")
    (tmp_path / "state").unlink()
    (tmp_path / "state").mkdir(mode=0o755)
    os.chown(tmp_path / "state", 65534, 65534)
    with pytest.raises(SandboxUnavailable, match="owned by root"):
        trusted_dir("sandbox-image")
    os.chown(tmp_path / "state", 0, 0)
    os.chmod(tmp_path / "state", 0o777)
    with pytest.raises(SandboxUnavailable, match="writable by root only"):
        trusted_dir("sandbox-image")
    os.chmod(tmp_path / "state", 0o755)
    assert trusted_dir("sandbox-image") == tmp_path / "state" / "sandbox-image"


def test_the_image_keeps_what_imports_rely_on():
    """Copies keep their modification times: Python checks a cached bytecode file against its source's
    mtime, and a run cannot write bytecode, so a stale one meant every lazy import compiled from source
    (an exec-path run took 6 s instead of 1.3 s)."""
    import json as stdlib_json

    from aarlab.sandbox.image import runtime_image
    from aarlab.verify.sandbox import ZYGOTE_PRELOAD

    img = runtime_image(ZYGOTE_PRELOAD)
    for host in (Path(stdlib_json.__file__), Path(__import__("scipy").__file__)):
        copy = img.path / str(host).lstrip("/")
        assert copy.stat().st_mtime_ns == host.stat().st_mtime_ns
        assert copy.read_bytes() == host.read_bytes()


def test_a_run_cannot_write_its_proc_files(path):
    """Red team (stop 24): a run owns ``/proc/self/autogroup`` and could write nice 0 there, undoing the
    niceness it was given. Worse, the kernel accepts one autogroup write per 100 ms host-wide and answers
    EAGAIN to the next: two overlapping runs decoded 8 bits exactly from which writes failed. The run's
    ``/proc`` is mounted read-only, so every write fails the same way, whatever any other run does."""
    got = _run("proc_writes")
    assert all(r == ["EROFS"] * 3 for r in got.values()), got
