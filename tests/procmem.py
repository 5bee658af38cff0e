"""Memory of a process tree as the kernel accounts it: PSS (proportional set
size: each shared page split among the processes sharing it) of a process and
all its descendants, from /proc/<pid>/smaps_rollup; and how many of them are
Claude Code. Tests and `make bench` measure the core this way."""

from __future__ import annotations

import os
from pathlib import Path

import claude_agent_sdk

from core_service.server import SHARED_CLI_DIR

CLAUDE_CLI = Path(claude_agent_sdk.__file__).resolve().parent / "_bundled" / "claude"


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pss_bytes(pid: int) -> int:
    """One process's PSS (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_pss_bytes(root: int) -> int:
    """PSS of `root` and every process below it."""
    return sum(pss_bytes(pid) for pid in [root, *descendants(root)])


def is_claude(pid: int) -> bool:
    """The bundled CLI, or the copy a core runs when its data dir is private
    (`claude-<size>-<mtime>` in the shared bin folder, workspace_layout.reachable_cli)."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False
    if exe == CLAUDE_CLI:
        return True
    st = CLAUDE_CLI.stat()
    return exe.parent == SHARED_CLI_DIR and exe.name == f"claude-{st.st_size}-{int(st.st_mtime)}"


def claude_count(root: int) -> int:
    """Claude Code processes below `root`."""
    return sum(1 for pid in descendants(root) if is_claude(pid))
