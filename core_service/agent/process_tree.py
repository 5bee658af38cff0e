"""Ending a Claude Code process with everything it started, read off /proc.

Processes are frozen (SIGSTOP) before they are killed, so none can fork a new
one in between, and each is known by pid and start time, so a pid the kernel
has handed to another process since is never signalled. Commands run inside
bubblewrap with a pid namespace of their own: killing the namespace's first
process ends every process in it, however it detached (nohup, setsid).

The blocking work runs on a small pool of its own (`afreeze`, `akill`), not
the default executor the database calls use: a burst of ending processes,
each waiting up to GONE_WAIT_SECONDS, cannot starve them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import time

# A process: its pid and its start time (clock ticks after boot).
Proc = tuple[int, int]

FREEZE_ROUNDS = 20
GONE_WAIT_SECONDS = 5.0
# Threads for freezing and killing; more kills wait their turn in the pool's
# queue, which is bounded by the processes there are to end (the live cap).
KILL_THREADS = 2
_POOL = concurrent.futures.ThreadPoolExecutor(KILL_THREADS, thread_name_prefix="ccapi-kill")


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields follow the last ")".
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _all() -> dict[int, tuple[int, str, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                out[int(entry)] = info
    return out


def _uid_of(pid: int) -> tuple[int, int] | None:
    """(real, effective) uid of a process."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    real, effective = line.split()[1:3]
                    return int(real), int(effective)
    except OSError:
        return None
    return None


def _found(root: Proc | None, uid: int | None) -> set[Proc]:
    """The live descendants of `root` and the processes running as `uid`."""
    table = _all()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: set[Proc] = set()
    rooted = root is not None and table.get(root[0], (0, "", -1))[2] == root[1]
    pending = list(children.get(root[0], [])) if root is not None and rooted else []
    while pending:
        pid = pending.pop()
        out.add((pid, table[pid][2]))
        pending.extend(children.get(pid, []))
    if uid is not None:
        for pid, (_ppid, _state, start) in table.items():
            ids = _uid_of(pid)
            if ids is not None and uid in ids and pid != os.getpid():
                out.add((pid, start))
    return {(pid, start) for pid, start in out if table.get(pid, (0, "Z", 0))[1] != "Z"}


def _signal(proc: Proc, signum: int) -> None:
    pid, start = proc
    info = _stat(pid)
    if info is None or info[2] != start:
        return  # gone, or the pid is someone else's now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _alive(proc: Proc) -> bool:
    info = _stat(proc[0])
    return info is not None and info[2] == proc[1] and info[1] != "Z"


def identify(pid: int | None) -> Proc | None:
    """The process `pid` as it is now (taken when it starts, used to end it)."""
    info = _stat(pid) if pid is not None else None
    return (pid, info[2]) if pid is not None and info is not None else None


def freeze(root: Proc | None, with_root: bool, uid: int | None = None) -> set[Proc]:
    """Stops the descendants of `root` (and `root` itself when `with_root`, and
    the processes of `uid`) until no new one appears; returns them."""
    frozen: set[Proc] = set()
    if with_root and root is not None and _alive(root):
        _signal(root, signal.SIGSTOP)
        frozen.add(root)
    for _ in range(FREEZE_ROUNDS):
        new = _found(root, uid) - frozen
        if not new:
            break
        for proc in new:
            _signal(proc, signal.SIGSTOP)
        frozen |= new
    return frozen


def kill(frozen: set[Proc], root: Proc | None, uid: int | None) -> list[int]:
    """Kills `frozen`, `root` and whatever else descends from it or runs as
    `uid` (None: no sweep by uid), and waits until they are gone; returns the
    pids still there after GONE_WAIT_SECONDS."""
    if uid is not None and uid in (0, os.getuid()):
        uid = None  # never sweep root's or the core's own processes
    victims = frozen | freeze(root, True, uid)
    for proc in victims:
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + GONE_WAIT_SECONDS
    left = [p for p in victims if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if _alive(p)]
    return sorted(pid for pid, _ in left)


async def afreeze(root: Proc | None, with_root: bool, uid: int | None = None) -> set[Proc]:
    """`freeze`, on the process-tree pool."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, freeze, root, with_root, uid)


async def akill(frozen: set[Proc], root: Proc | None, uid: int | None) -> list[int]:
    """`kill`, on the process-tree pool."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, kill, frozen, root, uid)
