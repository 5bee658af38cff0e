"""A turn's file changes: snapshots of the workspace, and their differences.

Changes are found by comparing snapshots of the directory, not by parsing
tool calls, so edits made through Bash (`echo > f`, `git checkout`, a build)
are caught the same as Write and Edit.

The agent decides what the workspace holds, and the core reads it as root, so
the reading is bounded per turn (ScanBudget): files over a size, sparse files,
and whatever is left once the turn's bytes or seconds are spent are compared
by size and modification time instead of content, and their change says so.
The work runs on a small executor of its own, never on the database threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from claudecode.v1 import events_pb2 as ev
from core_service.workspace_reads import looks_binary, read_upto, regular_files

log = logging.getLogger("ccapi.files")

# Text files up to this size keep their content in a snapshot, for diffs.
DIFF_SOURCE_LIMIT = 256 * 1024
# Files larger than this are compared by size and time, not read.
HASH_LIMIT = 8 * 1024 * 1024
# Above this size, a file with fewer allocated blocks than bytes is sparse
# (`truncate -s 64M f`): reading it would hash zeros the disk does not hold.
SPARSE_CHECK_FROM = 1024 * 1024
# What one turn may spend reading its workspace.
TURN_READ_BYTES = 256 * 1024 * 1024
TURN_SCAN_SECONDS = 30.0
SCAN_SECONDS = 5.0
# Turns scanning at once; more wait their turn rather than take threads from others.
SCAN_THREADS = 2

_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _scan_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=SCAN_THREADS, thread_name_prefix="ccapi-files"
        )
    return _executor


@dataclass(frozen=True)
class FileState:
    size: int
    mtime_ns: int
    digest: str
    binary: bool
    text: str | None
    # Why the content was not read (then `digest` is size and time only).
    unread: str | None = None


Snapshot = dict[str, FileState]


@dataclass
class ScanBudget:
    """The reading one turn may still do."""

    bytes_left: int = TURN_READ_BYTES
    seconds_left: float = TURN_SCAN_SECONDS
    seconds_per_scan: float = SCAN_SECONDS
    # Set once a scan stopped early (file count, time); logged once per turn.
    cut: list[str] = field(default_factory=list)


def _by_metadata(st: os.stat_result, fd: int, reason: str) -> FileState:
    try:
        binary = looks_binary(os.read(fd, 8192))
    except OSError:
        binary = True
    digest = f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
    return FileState(st.st_size, st.st_mtime_ns, digest, binary, None, reason)


def _unread_reason(st: os.stat_result, budget: ScanBudget, deadline: float) -> str | None:
    if st.st_size > HASH_LIMIT:
        return f"larger than {HASH_LIMIT // (1024 * 1024)} MB"
    if st.st_size > SPARSE_CHECK_FROM and st.st_blocks * 512 < st.st_size:
        return "a sparse file"
    if st.st_size > budget.bytes_left:
        return f"this turn's read budget of {TURN_READ_BYTES // (1024 * 1024)} MB was used up"
    if time.monotonic() > deadline:
        return "this turn's time for reading files was used up"
    return None


def snapshot(
    root: Path, previous: Snapshot | None = None, budget: ScanBudget | None = None
) -> Snapshot:
    """The workspace's regular files; unchanged files reuse `previous`' entry."""
    budget = budget if budget is not None else ScanBudget()
    started = time.monotonic()
    deadline = started + max(0.0, min(budget.seconds_per_scan, budget.seconds_left))
    result: Snapshot = {}

    def visit(rel: str, fd: int, st: os.stat_result) -> None:
        old = (previous or {}).get(rel)
        if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            result[rel] = old
            return
        reason = _unread_reason(st, budget, deadline)
        if reason is not None:
            result[rel] = _by_metadata(st, fd, reason)
            return
        try:
            data = read_upto(fd, HASH_LIMIT)
        except OSError:
            return
        budget.bytes_left -= len(data)
        binary = looks_binary(data)
        text = None if binary or len(data) > DIFF_SOURCE_LIMIT else data.decode("utf-8", "replace")
        result[rel] = FileState(
            len(data), st.st_mtime_ns, hashlib.sha256(data).hexdigest(), binary, text
        )

    complete = regular_files(root, visit)
    budget.seconds_left -= time.monotonic() - started
    if not complete:
        # Files past the limit were not looked at: not deleted, just unknown.
        for rel, state in (previous or {}).items():
            result.setdefault(rel, state)
        if not budget.cut:
            budget.cut.append("file count")
            log.warning("workspace has too many files to track them all", extra={"root": str(root)})
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
        either = new or old
        binary = bool(either and either.binary)
        change = ev.FileChange(
            kind=kind, path=path, size_bytes=new.size if new else 0, binary=binary
        )
        unread = (new.unread if new else None) or (old.unread if old else None)
        if unread is not None and kind != ev.FILE_CHANGE_KIND_DELETED:
            # Found by size and time: say why its content was not compared
            # (a note, not a diff: also for binary files, so the skip is visible).
            change.diff = f"(content not compared: {unread})\n"
            change.diff_truncated = True
        elif not binary:
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


class FileTracker:
    """Follows one turn's changes: `step()` after each tool call reports what
    changed since the previous step; `total()` the net change of the turn.

    The `a`-prefixed coroutines do the same on the file-scan executor; the
    plain methods block their caller (at most SCAN_SECONDS each)."""

    def __init__(self, root: Path, diff_limit: int, budget: ScanBudget | None = None) -> None:
        self._root = root
        self._diff_limit = diff_limit
        self._budget = budget if budget is not None else ScanBudget()
        self._start: Snapshot = {}
        self._last: Snapshot = {}

    def begin(self) -> None:
        self._start = self._last = snapshot(self._root, None, self._budget)

    def step(self) -> list[ev.FileChange]:
        current = snapshot(self._root, self._last, self._budget)
        found = changes(self._last, current, self._diff_limit)
        self._last = current
        return found

    def total(self) -> list[ev.FileChange]:
        return changes(self._start, self._last, self._diff_limit)

    async def abegin(self) -> None:
        await asyncio.get_running_loop().run_in_executor(_scan_executor(), self.begin)

    async def astep(self) -> list[ev.FileChange]:
        return await asyncio.get_running_loop().run_in_executor(_scan_executor(), self.step)

    async def atotal(self) -> list[ev.FileChange]:
        return await asyncio.get_running_loop().run_in_executor(_scan_executor(), self.total)
