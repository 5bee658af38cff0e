"""Reading a conversation's workspace from outside, as the (root) core: the
file listing, downloads, and the walk the change report is built on.

The agent controls every file here and may swap any of them for a symlink at
any moment, so nothing is opened by a path that could leave the workspace.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core_service.errors import InvalidArgument, NotFound

SKIP_DIRS = frozenset({".git", ".claude"})
MAX_FILES = 20_000
MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024

# Never follow a symlink (O_NOFOLLOW, relative to an open directory), never
# block on a FIFO (O_NONBLOCK).
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def looks_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the sample's end is still text.
        return error.start < len(data[:8192]) - 4
    return False


def read_upto(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def regular_files(root: Path, visit: Callable[[str, int, os.stat_result], None]) -> bool:
    """Calls `visit(relative path, open fd, fstat)` for each regular file, at most
    MAX_FILES of them; returns False when it stopped at that limit.

    os.fwalk holds each directory open and files are opened relative to it
    with O_NOFOLLOW, so whatever is read was inside the workspace when it was read.
    """
    count = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if count >= MAX_FILES:
                return False
            try:
                fd = os.open(name, READ_FLAGS, dir_fd=dirfd)
            except OSError:
                continue  # a symlink, or gone
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    rel = name if base == "." else f"{base}/{name}".replace(os.sep, "/")
                    visit(rel, fd, st)
                    count += 1
            finally:
                os.close(fd)
    return True


def _parts(relative: str) -> tuple[str, ...]:
    """The path's components; refuses anything that could leave the workspace."""
    if not relative or "\0" in relative:
        raise InvalidArgument("A file path is required.", param="path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidArgument("The path must be relative to the workspace.", param="path")
    parts = tuple(p for p in pure.parts if p != ".")
    if not parts:
        raise InvalidArgument("A file path is required.", param="path")
    return parts


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """An fd for the file at `parts` under `root`, opened one component at a
    time without following symlinks (the agent may have planted one)."""
    dirfd = os.open(root, DIR_FLAGS)
    try:
        for part in parts[:-1]:
            child = os.open(part, DIR_FLAGS, dir_fd=dirfd)
            os.close(dirfd)
            dirfd = child
        return os.open(parts[-1], READ_FLAGS, dir_fd=dirfd)
    finally:
        os.close(dirfd)


@dataclass(frozen=True)
class FileContent:
    path: str
    size: int
    mtime: int
    binary: bool
    media_type: str
    data: bytes


def read_file(root: Path, relative: str) -> FileContent:
    parts = _parts(relative)
    try:
        fd = _open_beneath(root, parts)
    except OSError:
        # Missing, a symlink somewhere on the way, or not a folder: all "no such file".
        raise NotFound(
            f"No file '{relative}' in this session.", reason="file_not_found", param="path"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(f"'{relative}' is not a file.", reason="file_not_found", param="path")
        if st.st_size > MAX_DOWNLOAD_BYTES:
            raise InvalidArgument("The file is too large to download.", param="path")
        data = read_upto(fd, MAX_DOWNLOAD_BYTES + 1)
    finally:
        os.close(fd)
    binary = looks_binary(data)
    guessed = mimetypes.guess_type(parts[-1])[0]
    media_type = guessed or ("application/octet-stream" if binary else "text/plain")
    return FileContent("/".join(parts), len(data), int(st.st_mtime), binary, media_type, data)


def list_files(root: Path) -> list[tuple[str, int, int, bool]]:
    """(path, size, mtime, binary) for each regular file."""
    out: list[tuple[str, int, int, bool]] = []

    def visit(rel: str, fd: int, st: os.stat_result) -> None:
        try:
            head = os.read(fd, 8192)
        except OSError:
            return
        out.append((rel, st.st_size, int(st.st_mtime), looks_binary(head)))

    regular_files(root, visit)
    return out
