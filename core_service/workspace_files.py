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


def _walk(root: Path) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), st))
            if len(found) >= MAX_FILES:
                return found
    return found


def snapshot(root: Path, previous: Snapshot | None = None) -> Snapshot:
    """The workspace's regular files; unchanged files reuse `previous`' entry."""
    result: Snapshot = {}
    for rel, st in _walk(root):
        old = (previous or {}).get(rel)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            result[rel] = old
            continue
        try:
            data = (root / rel).read_bytes()
        except OSError:
            continue
        binary = looks_binary(data)
        text = None if binary or len(data) > DIFF_SOURCE_LIMIT else data.decode("utf-8", "replace")
        result[rel] = FileState(
            len(data), st.st_mtime_ns, hashlib.sha256(data).hexdigest(), binary, text
        )
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


def resolve_inside(root: Path, relative: str) -> Path:
    """`relative` as a path inside `root`; refuses anything that leaves it
    (.., absolute paths, symlinks pointing out)."""
    if not relative or "\0" in relative:
        raise InvalidArgument("A file path is required.", param="path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise InvalidArgument("The path must be relative to the workspace.", param="path")
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, *pure.parts))
    if not target.startswith(base + os.sep):
        raise InvalidArgument("The path leaves the workspace.", param="path")
    return Path(target)


@dataclass(frozen=True)
class FileContent:
    path: str
    size: int
    mtime: int
    binary: bool
    media_type: str
    data: bytes


def read_file(root: Path, relative: str) -> FileContent:
    target = resolve_inside(root, relative)
    try:
        st = os.stat(target)
    except OSError:
        raise NotFound(
            f"No file '{relative}' in this session.", reason="file_not_found", param="path"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise NotFound(f"'{relative}' is not a file.", reason="file_not_found", param="path")
    if st.st_size > MAX_DOWNLOAD_BYTES:
        raise InvalidArgument("The file is too large to download.", param="path")
    data = target.read_bytes()
    binary = looks_binary(data)
    guessed = mimetypes.guess_type(target.name)[0]
    media_type = guessed or ("application/octet-stream" if binary else "text/plain")
    return FileContent(relative, len(data), int(st.st_mtime), binary, media_type, data)


def list_files(root: Path) -> list[tuple[str, int, int, bool]]:
    """(path, size, mtime, binary) for each regular file."""
    out: list[tuple[str, int, int, bool]] = []
    for rel, st in _walk(root):
        try:
            with open(root / rel, "rb") as handle:
                head = handle.read(8192)
        except OSError:
            continue
        out.append((rel, st.st_size, int(st.st_mtime), looks_binary(head)))
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
