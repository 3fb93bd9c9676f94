"""The wire format of method snapshots: a deterministic tar.gz, and the checks that make one safe to unpack.

Shared by the client (``pack_folder``) and the server (``validate_archive``, ``safe_extract``). An
archive is refused for absolute paths, ``..``, links, devices, more than ``MAX_MEMBERS`` members or more
than ``MAX_UNPACKED_BYTES`` unpacked; it is read as a stream, so a gzip bomb costs at most the cap.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from aarlab.testbed.errors import AarlabError


class UnsafeArchiveError(AarlabError):
    """The archive is not a plain tar.gz of regular files and folders inside one root."""


#: Caps on what a snapshot may unpack to (a 1 MB gzip can inflate to gigabytes).
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 2000
#: Caps on a sandbox bundle from the server (strong-encoder features of every unlabelled and dev item).
MAX_BUNDLE_BYTES = 4 * 1024 * 1024 * 1024
MAX_BUNDLE_MEMBERS = 100


class _CappedReader(io.RawIOBase):
    """The decompressed stream, refusing to yield more than ``cap`` bytes (gzip bombs stop here)."""

    def __init__(self, data: bytes, cap: int) -> None:
        self._gz = gzip.GzipFile(fileobj=io.BytesIO(data))
        self._cap = cap
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._gz.read(min(len(b), 1 << 16))
        self.total += len(chunk)
        if self.total > self._cap:
            raise UnsafeArchiveError(
                f"the archive unpacks to more than {self._cap} bytes; leave data, models and caches out "
                "of the method folder"
            )
        b[: len(chunk)] = chunk
        return len(chunk)


def check_member(m: tarfile.TarInfo) -> None:
    """Refuse a member that could escape the target folder or is not plain data."""
    p = PurePosixPath(m.name)
    if p.is_absolute() or m.name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"archive member {m.name!r} has an absolute path; use relative paths")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"archive member {m.name!r} contains '..'; paths must stay inside")
    if m.issym() or m.islnk():
        raise UnsafeArchiveError(f"archive member {m.name!r} is a link; links are not allowed")
    if not (m.isfile() or m.isdir()):
        raise UnsafeArchiveError(f"archive member {m.name!r} is a device or special file")


def _members(
    data: bytes, max_bytes: int, max_members: int
) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Stream the archive's members (each checked) under the caps, without unpacking it in memory."""
    try:
        with tarfile.open(fileobj=_CappedReader(data, max_bytes), mode="r|") as tar:
            declared = 0
            for count, m in enumerate(tar, start=1):
                declared += max(m.size, 0)
                if count > max_members:
                    raise UnsafeArchiveError(
                        f"the archive has more than {max_members} members; send the method folder only"
                    )
                if declared > max_bytes:
                    raise UnsafeArchiveError(
                        f"the archive's files add up to more than {max_bytes} bytes; leave data, models "
                        "and caches out of the method folder"
                    )
                check_member(m)
                yield m, tar
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UnsafeArchiveError(
            f"not a readable tar.gz archive ({e}); send `tar czf - -C folder .`"
        ) from None


def validate_archive(
    data: bytes, *, max_bytes: int = MAX_UNPACKED_BYTES, max_members: int = MAX_MEMBERS
) -> None:
    """Refuse anything that is not a safe tar.gz within the caps (raises with a message that says what
    to fix). CPU-bound: call it off the server's event loop."""
    for _ in _members(data, max_bytes, max_members):
        pass


def safe_extract(
    data: bytes, dest: Path, *, max_bytes: int = MAX_UNPACKED_BYTES, max_members: int = MAX_MEMBERS
) -> list[Path]:
    """Unpack a snapshot into ``dest`` (created) by streaming, refusing unsafe members and anything over
    the caps; returns the files written."""
    validate_archive(data, max_bytes=max_bytes, max_members=max_members)  # all or nothing is written
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for m, tar in _members(data, max_bytes, max_members):
        target = dest / m.name
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(m)
        if src is None:
            raise UnsafeArchiveError(f"archive member {m.name!r} has no data")
        with target.open("wb") as fh:
            shutil.copyfileobj(src, fh, 1 << 16)
        written.append(target)
    return written


def pack_folder(folder: Path, *, dir_fd: int | None = None) -> bytes:
    """A deterministic tar.gz of a method folder (sorted names; zeroed times and owners; gzip mtime 0),
    so the same folder always has the same sha256. ``dir_fd``: ``folder`` is relative to this open
    directory (a caller that opened it without following links, see
    :func:`aarlab.agents.sandbox_fs.open_beneath`).

    The walk never follows a symbolic link, even one that replaces a folder or a file while it runs
    (``os.fwalk``, files opened with ``O_NOFOLLOW``): a folder another process can write must not
    make this process read a file outside it. Links, devices and pipes are left out."""
    members: list[tuple[tuple[str, ...], bytes]] = []
    for top, dirnames, filenames, dfd in os.fwalk(str(folder), dir_fd=dir_fd, follow_symlinks=False):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        rel = PurePosixPath(top).relative_to(PurePosixPath(str(folder)))
        for name in filenames:
            data = _read_plain(name, dfd)
            if data is not None:
                members.append(((rel / name).parts, data))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for parts, data in sorted(members):
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _read_plain(name: str, dir_fd: int) -> bytes | None:
    """The bytes of regular file ``name`` in ``dir_fd``, or None for a link or anything not a file."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.ENOENT):
            return None  # a link (O_NOFOLLOW), a socket, or gone meanwhile
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fh.read()


def extract_bundle(data: bytes, dest: Path) -> list[Path]:
    """Unpack a sandbox bundle (``GET /api/v1/tasks/{task}/sandbox``) into ``dest`` with the same checks
    as a snapshot, under the bundle caps :data:`MAX_BUNDLE_BYTES` / :data:`MAX_BUNDLE_MEMBERS`; returns
    the files written. Raises UnsafeArchiveError for an unsafe or oversized archive."""
    return safe_extract(data, dest, max_bytes=MAX_BUNDLE_BYTES, max_members=MAX_BUNDLE_MEMBERS)
