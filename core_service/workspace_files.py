"""A conversation's workspace seen from outside: listing, safe reads, and the
snapshots whose differences are the turn's file changes.

Changes are found by comparing snapshots of the directory, not by parsing
tool calls, so edits made through Bash (`echo > f`, `git checkout`, a build)
are caught the same as Write and Edit.
"""

from __future__ import annotations

import difflib
import hashlib
import mimetypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from claudecode.v1 import events_pb2 as ev
from core_service.errors import InvalidArgument, NotFound

SKIP_DIRS = frozenset({".git", ".claude"})
MAX_FILES = 20_000
# Text files up to this size keep their content in a snapshot, for diffs.
DIFF_SOURCE_LIMIT = 256 * 1024
MAX_DOWNLOAD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    digest: str
    binary: bool
    text: str | None


Snapshot = dict[str, FileState]


def looks_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the sample's end is still text.
        return error.start < len(data[:8192]) - 4
    return False


# Reading files the agent controls, as root: never follow a symlink (O_NOFOLLOW,
# relative to an open directory), never block on a FIFO (O_NONBLOCK).
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Files larger than this are fingerprinted by size and time, not read whole.
HASH_LIMIT = 64 * 1024 * 1024


def _read(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _regular_files(root: Path, visit: Callable[[str, int, os.stat_result], None]) -> None:
    """Calls `visit(relative path, open fd, fstat)` for each regular file.

    The agent may swap a file or folder for a symlink at any moment; os.fwalk
    holds each directory open and files are opened relative to it with
    O_NOFOLLOW, so whatever is read was inside the workspace when it was read.
    """
    count = 0
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
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
            if count >= MAX_FILES:
                return


def snapshot(root: Path, previous: Snapshot | None = None) -> Snapshot:
    """The workspace's regular files; unchanged files reuse `previous`' entry."""
    result: Snapshot = {}

    def visit(rel: str, fd: int, st: os.stat_result) -> None:
        old = (previous or {}).get(rel)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            result[rel] = old
            return
        if st.st_size > HASH_LIMIT:
            digest = f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
            binary = looks_binary(os.read(fd, 8192))
            result[rel] = FileState(st.st_size, st.st_mtime_ns, digest, binary, None)
            return
        try:
            data = _read(fd, HASH_LIMIT)
        except OSError:
            return
        binary = looks_binary(data)
        text = None if binary or len(data) > DIFF_SOURCE_LIMIT else data.decode("utf-8", "replace")
        result[rel] = FileState(
            len(data), st.st_mtime_ns, hashlib.sha256(data).hexdigest(), binary, text
        )

    _regular_files(root, visit)
    return result


def changes(before: Snapshot, after: Snapshot, diff_limit: int) -> list[ev.FileChange]:
    out: list[ev.FileChange] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and old.digest == new.digest:
            continue
        if new is None:
            kind = ev.FILE_CHANGE_KIND_DELETED
        elif old is None:
            kind = ev.FILE_CHANGE_KIND_CREATED
        else:
            kind = ev.FILE_CHANGE_KIND_MODIFIED
        binary = bool((new or old) and (new or old).binary)  # type: ignore[union-attr]
        change = ev.FileChange(
            kind=kind, path=path, size_bytes=new.size if new else 0, binary=binary
        )
        if not binary:
            old_text = old.text if old else ""
            new_text = new.text if new else ""
            if old_text is not None and new_text is not None:
                diff = "".join(
                    difflib.unified_diff(
                        old_text.splitlines(keepends=True),
                        new_text.splitlines(keepends=True),
                        fromfile="/dev/null" if old is None else f"a/{path}",
                        tofile="/dev/null" if new is None else f"b/{path}",
                    )
                )
                if len(diff) > diff_limit:
                    diff = diff[:diff_limit] + f"\n... diff cut at {diff_limit} characters\n"
                    change.diff_truncated = True
                change.diff = diff
            else:
                change.diff = "(file too large for a diff)\n"
                change.diff_truncated = True
        out.append(change)
    return out


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
        data = _read(fd, MAX_DOWNLOAD_BYTES + 1)
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

    _regular_files(root, visit)
    return out


class FileTracker:
    """Follows one turn's changes: `step()` after each tool call reports what
    changed since the previous step; `total()` the net change of the turn."""

    def __init__(self, root: Path, diff_limit: int) -> None:
        self._root = root
        self._diff_limit = diff_limit
        self._start: Snapshot = {}
        self._last: Snapshot = {}

    def begin(self) -> None:
        self._start = self._last = snapshot(self._root)

    def step(self) -> list[ev.FileChange]:
        current = snapshot(self._root, self._last)
        found = changes(self._last, current, self._diff_limit)
        self._last = current
        return found

    def total(self) -> list[ev.FileChange]:
        return changes(self._start, self._last, self._diff_limit)
