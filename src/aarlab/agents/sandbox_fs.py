"""The trusted side's file operations inside an agent's sandbox, safe against the agent's own links.

The agent's commands can write anything in their sandbox, at any moment (an MCP harness runs tool
calls concurrently, so a shell loop can swap a folder for a symbolic link between a path check and
its use). A path that was checked and then opened by name would follow such a link to wherever it
points on the host, with the trusted process's rights: packing a "method folder" that reads the
server's label files, unpacking a snapshot that writes into ``/root``. So every path below the sandbox
is opened one component at a time from the sandbox's own descriptor with ``O_NOFOLLOW``, and what the
trusted side unpacks is prepared outside the sandbox and moved in with one ``rename`` relative to that
descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePath

from aarlab.testbed.errors import AarlabError

__all__ = ["LinkInSandbox", "open_beneath", "opened_beneath", "place_tree", "read_beneath"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class LinkInSandbox(AarlabError):
    """A component of a sandbox path is a symbolic link (or not a folder): refused, never followed."""


def open_beneath(root: Path, rel: PurePath, *, create: bool = False, uid: int | None = None) -> int:
    """A descriptor of the folder ``root / rel`` opened one component at a time without following a
    link (``rel`` relative, no ``..``). ``create``: missing folders are made (owned by ``uid`` when
    given). The caller closes it. Raises :class:`LinkInSandbox` for a link or a file on the way,
    ``FileNotFoundError`` for a missing folder without ``create``."""
    if rel.is_absolute() or ".." in rel.parts:
        raise LinkInSandbox(f"{rel}: a sandbox path must be relative and stay inside")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in rel.parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if uid is not None:
                        os.chown(part, uid, uid, dir_fd=fd, follow_symlinks=False)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise LinkInSandbox(
                        f"{rel}: {part!r} is a symbolic link or a file, not a folder; links are never "
                        "followed out of the sandbox"
                    ) from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_beneath(root: Path, rel: PurePath) -> Iterator[int]:
    """:func:`open_beneath` as a context manager (closes the descriptor)."""
    fd = open_beneath(root, rel)
    try:
        yield fd
    finally:
        os.close(fd)


def read_beneath(root: Path, file: Path) -> bytes:
    """The bytes of ``file`` (a path below ``root``), every component opened without following a
    link. Raises :class:`LinkInSandbox` for a link on the way or at the file itself."""
    with opened_beneath(root, file.parent.relative_to(root)) as d:
        try:
            fd = os.open(file.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise LinkInSandbox(f"{file.name!r} is a symbolic link; links are never followed") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            return fh.read()


def place_tree(tree: Path, root: Path, rel: PurePath, *, uid: int | None = None) -> None:
    """Copy the folder ``tree`` (prepared by the trusted side where the agent cannot reach it) to
    ``root / rel``, which must not exist or be an empty folder; the folders above it are made when
    missing. Everything is created relative to descriptors (:func:`open_beneath`), files with
    ``O_EXCL | O_NOFOLLOW``, so a link the agent plants meanwhile makes the copy fail, never lets it
    write outside the sandbox; what is written is owned by ``uid`` (when given). Raises
    :class:`LinkInSandbox`, ``FileExistsError`` when ``rel`` is a non-empty folder or a file."""
    if not rel.parts:
        raise LinkInSandbox("give a folder inside the sandbox, not the sandbox itself")
    parent = open_beneath(root, PurePath(*rel.parts[:-1]), create=True, uid=uid)
    try:
        name = rel.parts[-1]
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(name, dir_fd=parent)  # an empty folder of the agent's: ours replaces it
        os.mkdir(name, 0o700, dir_fd=parent)
        _copy_into(tree, _open_dir(name, parent), uid)
    finally:
        os.close(parent)


def _open_dir(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LinkInSandbox(f"{name!r} was replaced by a link while it was written") from None
        raise


def _copy_into(src: Path, fd: int, uid: int | None) -> None:
    """Copy ``src``'s files and folders into the open folder ``fd`` (closed on return), then give it
    to ``uid``."""
    try:
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(entry.name, 0o700, dir_fd=fd)
                _copy_into(Path(entry.path), _open_dir(entry.name, fd), uid)
            elif entry.is_file(follow_symlinks=False):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                out = os.open(entry.name, flags, 0o644, dir_fd=fd)
                with os.fdopen(out, "wb") as dst, open(entry.path, "rb") as fh:
                    shutil.copyfileobj(fh, dst, 1 << 16)
                    if uid is not None:
                        os.fchown(dst.fileno(), uid, uid)
        os.fchmod(fd, 0o755)
        if uid is not None:
            os.fchown(fd, uid, uid)
    finally:
        os.close(fd)
