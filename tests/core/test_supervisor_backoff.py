"""A part that keeps crashing is restarted with a growing, bounded pause, not
in a tight loop; one that ran a while starts from the shortest pause again."""

from __future__ import annotations

import itertools
import subprocess
import sys

from core_service.supervisor import (
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    STABLE_SECONDS,
    Part,
)


def _crashing_part() -> Part:
    part = Part("crasher", [sys.executable, "-c", "raise SystemExit(3)"])
    part.start({})
    assert part.process is not None
    part.process.wait(30)
    return part


def test_a_crash_looping_part_backs_off_up_to_the_cap() -> None:
    part = _crashing_part()
    pauses = []
    now = part.started_at
    for _ in range(12):
        now += 1.0  # it dies a second after each start
        part.started_at = now - 1.0
        part.died(now)
        pauses.append(part.restart_at - now)
    assert pauses[0] == FIRST_BACKOFF_SECONDS
    assert all(b >= a for a, b in itertools.pairwise(pauses))
    assert max(pauses) == MAX_BACKOFF_SECONDS
    assert part.restarts == 12


def test_a_part_that_ran_a_while_restarts_quickly_again() -> None:
    part = _crashing_part()
    for _ in range(6):
        part.died(part.started_at + 1)
    assert part.backoff > FIRST_BACKOFF_SECONDS
    part.died(part.started_at + STABLE_SECONDS + 1)
    assert part.restart_at - (part.started_at + STABLE_SECONDS + 1) == FIRST_BACKOFF_SECONDS


def test_a_restarted_part_is_a_new_process() -> None:
    part = _crashing_part()
    first = part.process
    part.died(part.started_at + 1)
    part.start({})
    assert part.process is not first and part.restart_at == 0.0
    assert part.process is not None
    assert part.process.wait(30) == 3
    assert isinstance(part.process, subprocess.Popen)
