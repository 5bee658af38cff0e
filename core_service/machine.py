"""What this machine can hold: the memory the core may use (cgroup-aware) and
its cores, and the capacity defaults derived from them.

The per-process size is measured, not guessed (issue 11): proportional set
size (PSS, shared pages split among the processes sharing them) of the core
plus all its Claude Code children, 12 short conversations in a row on the
default stack took 1.8 GiB and 24 took 2.9 GiB, i.e. about 95 MiB per extra
live Claude Code process (each shows about 260 MiB resident, most of it the
shared CLI binary). `make bench` measures it again at a cap of 24 processes
kept full over 200 conversations: about 107 MiB each at the peak, so the
derived cap counts 110. `tests/core/test_capacity.py` measures the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
# Measured PSS of one more live Claude Code process (see above), rounded up.
PROCESS_PSS_BYTES = 110 * MIB
# The share of the memory available at start that live processes may use:
# running turns grow (tool output, bigger transcripts), and the core, the
# facade and the database need room too.
MEMORY_SHARE = 0.5
# Bounds on the derived defaults: at least a couple of conversations even on
# a tiny box, and no more than the uid range and pid limits comfortably hold.
MIN_LIVE, MAX_LIVE = 2, 256
# Turns per core that run well at once: a turn mostly waits on the model, so
# a few per core; starting a CLI, though, is CPU-bound (paced separately).
TURNS_PER_CORE = 4
# How many turns may wait for a running slot, per running slot.
QUEUE_PER_SLOT = 4
DEFAULT_QUEUE_WAIT_SECONDS = 60.0

_CGROUP = Path("/sys/fs/cgroup")


def meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """/proc/meminfo in bytes ({} where it cannot be read)."""
    values: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return values


def cgroup_room(root: Path = _CGROUP, membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes the core's cgroup may still use (limit minus usage), or None when
    it has no memory limit (or cgroups cannot be read)."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    places: list[tuple[Path, str, str]] = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2: "0::/path"
            for base in (root / relative, root):
                places.append((base, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):  # v1: "4:memory:/path"
            for base in (root / "memory" / relative, root / "memory"):
                places.append((base, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    for directory, limit_name, usage_name in places:
        try:
            raw = (directory / limit_name).read_text().strip()
            usage = int((directory / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if raw == "max" or not raw.isdigit() or int(raw) >= 1 << 60:
            continue  # no limit at this level
        return max(0, int(raw) - usage)
    return None


@dataclass(frozen=True)
class MachineCapacity:
    """The memory budget for Claude Code processes and the caps it gives."""

    cores: int
    available_bytes: int
    budget_bytes: int
    max_live_processes: int
    max_running_turns: int
    max_queued_turns: int
    max_concurrent_starts: int


def measure() -> MachineCapacity:
    info = meminfo()
    available = info.get("MemAvailable") or info.get("MemTotal") or 4096 * MIB
    room = cgroup_room()
    if room is not None:
        available = min(available, room)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return derive(cores or 1, available)


def derive(cores: int, available_bytes: int) -> MachineCapacity:
    budget = int(available_bytes * MEMORY_SHARE)
    live = max(MIN_LIVE, min(MAX_LIVE, budget // PROCESS_PSS_BYTES))
    running = max(1, min(live, TURNS_PER_CORE * cores))
    return MachineCapacity(
        cores=cores,
        available_bytes=available_bytes,
        budget_bytes=budget,
        max_live_processes=live,
        max_running_turns=running,
        max_queued_turns=QUEUE_PER_SLOT * running,
        max_concurrent_starts=max(1, cores),
    )
