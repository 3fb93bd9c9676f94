"""No covert channel between runs through the page cache (tests/REDTEAM_HOLES.md).

Run A reads chosen pages of a file every run can read; a later run B, another uid, asks which pages are
resident — by ``/proc/self/io`` ``read_bytes``, by major faults through a mapping, or by timing. The
red team read 16 of 16 bits this way on both paths. Runs now see only tmpfs copies (``sandbox/image.py``:
always resident, no storage reads) and per-run copies of their method folder, so there is nothing to ask.
Both paths: the zygote's forked runs and the exec path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aarlab.sandbox import Bind, Limits
from aarlab.sandbox import zygote_client as zc
from aarlab.sandbox.namespaces import namespace_support
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
    got = _run("visible_storage_reads", skip=["/sandbox", "/tmp"])
    assert got["files"] > 3000  # it saw the interpreter, the standard library and the packages
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
