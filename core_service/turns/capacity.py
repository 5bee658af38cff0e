"""Capacity: how many turns run at once, who waits for a slot and how long,
and how many Claude Code processes start at once.

`TurnGate` lets `max_running` turns run; the next ones wait in a bounded FIFO
queue, each at most `max_wait` seconds. A turn that finds the queue full, or
waits too long, is refused with UNAVAILABLE (reason `overloaded`) and a retry
delay: the facade answers 503 with Retry-After. `StartPacer` lets `limit` CLI
starts run at once: starting Claude Code is CPU-bound, and a burst of starts
sharing the cores makes every one of them (and every running turn) slow.

Every number can change while the core runs (live configuration).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from core_service.errors import Unavailable

OVERLOADED = "overloaded"
# Bounds on the Retry-After a refused turn is given.
MIN_RETRY_SECONDS, MAX_RETRY_SECONDS = 1, 30
# Until turns have been timed, a turn is assumed to take this long.
ASSUMED_TURN_SECONDS = 5.0


@dataclass(frozen=True)
class Limits:
    max_live_processes: int
    max_running_turns: int
    max_queued_turns: int
    max_queue_wait_seconds: float
    max_concurrent_starts: int


class QueueClock(Protocol):
    """Where the time a turn waited for its slot is written (TurnProgress)."""

    queue_ms: int


def overloaded(message: str, retry_after: int) -> Unavailable:
    return Unavailable(message, reason=OVERLOADED, retry_after_seconds=retry_after)


class FifoSlots:
    """`limit` slots handed out in arrival order; the limit may change live.

    It keeps no bound on its waiters itself: its users do. TurnGate refuses a
    turn when `max_queued` wait already, and CLI starts happen inside turn
    slots, so at most `max_running` wait for the pacer."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.held = 0
        # Bounded by its users (see the class docstring): TurnGate refuses past
        # max_queued; starts wait only inside turn slots.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        # Waiters leave the deque as they get a slot or give up, so its length
        # is the count; len() is also safe from the metrics scrape's thread.
        return len(self._waiters)

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._hand_over()  # a raised limit lets waiters in now

    def take_now(self) -> bool:
        """Takes a slot when one is free and nobody is ahead in the queue."""
        if self.held < self.limit and not self.waiting:
            self.held += 1
            return True
        return False

    async def wait(self, timeout: float | None = None) -> None:
        """Waits in line for a slot; TimeoutError after `timeout` seconds."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except BaseException:
            self._give_back(waiter)  # timed out, or the caller went away
            raise

    def release(self) -> None:
        self.held -= 1
        self._hand_over()

    def _give_back(self, waiter: asyncio.Future[None]) -> None:
        """A waiter that leaves: a slot handed to it meanwhile passes on."""
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        if waiter.done() and not waiter.cancelled():
            self.release()
        else:
            waiter.cancel()

    def _hand_over(self) -> None:
        while self._waiters and self.held < self.limit:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.held += 1
            waiter.set_result(None)


class TurnGate:
    def __init__(self, max_running: int, max_queued: int, max_wait_seconds: float) -> None:
        self._slots = FifoSlots(max_running)
        self.max_queued = max(0, max_queued)
        self.max_wait_seconds = max(0.0, max_wait_seconds)
        # A moving average of how long a slot is held, for Retry-After.
        self._turn_seconds = ASSUMED_TURN_SECONDS

    @property
    def max_running(self) -> int:
        return self._slots.limit

    @property
    def running_count(self) -> int:
        return self._slots.held

    @property
    def queue_depth(self) -> int:
        return self._slots.waiting

    def configure(self, max_running: int, max_queued: int, max_wait_seconds: float) -> None:
        self.max_queued = max(0, max_queued)
        self.max_wait_seconds = max(0.0, max_wait_seconds)
        self._slots.set_limit(max_running)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, drained
        `max_running` at a time, at the average turn's pace."""
        rounds = (self.queue_depth + 1) / self.max_running
        seconds = math.ceil(rounds * self._turn_seconds)
        return max(MIN_RETRY_SECONDS, min(MAX_RETRY_SECONDS, seconds))

    @contextlib.asynccontextmanager
    async def slot(
        self, clock: QueueClock, on_queued: Callable[[], None] | None = None
    ) -> AsyncIterator[None]:
        """Holds one running slot for the block; waits for it in FIFO order
        (`on_queued` is told when the turn has to wait)."""
        started = time.monotonic()
        try:
            await self._acquire(on_queued)
        finally:
            clock.queue_ms = int((time.monotonic() - started) * 1000)
        acquired = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - acquired
            self._turn_seconds = 0.8 * self._turn_seconds + 0.2 * held
            self._slots.release()

    async def _acquire(self, on_queued: Callable[[], None] | None = None) -> None:
        if self._slots.take_now():
            return
        if self.queue_depth >= self.max_queued:
            raise overloaded(
                f"The service is at capacity ({self.running_count} turns running, "
                f"{self.queue_depth} waiting); retry later.",
                self.retry_after(),
            )
        if on_queued is not None:
            on_queued()
        try:
            await self._slots.wait(self.max_wait_seconds)
        except TimeoutError:
            raise overloaded(
                f"The service is at capacity: no turn slot freed within "
                f"{self.max_wait_seconds:g} s; retry later.",
                self.retry_after(),
            ) from None


class StartPacer:
    """At most `limit` Claude Code starts at once, in arrival order."""

    def __init__(self, limit: int) -> None:
        self._slots = FifoSlots(limit)

    @property
    def limit(self) -> int:
        return self._slots.limit

    @property
    def starting_count(self) -> int:
        return self._slots.held

    def configure(self, limit: int) -> None:
        self._slots.set_limit(limit)

    @contextlib.asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        if not self._slots.take_now():
            await self._slots.wait()
        try:
            yield
        finally:
            self._slots.release()


class Capacity:
    """The caps of one core: its turn gate, its start pacer, and the live-process cap
    (which the registry enforces)."""

    def __init__(self, limits: Limits) -> None:
        self.max_live_processes = max(1, limits.max_live_processes)
        self.turns = TurnGate(
            limits.max_running_turns, limits.max_queued_turns, limits.max_queue_wait_seconds
        )
        self.starts = StartPacer(limits.max_concurrent_starts)

    def apply(self, limits: Limits) -> None:
        self.max_live_processes = max(1, limits.max_live_processes)
        self.turns.configure(
            limits.max_running_turns, limits.max_queued_turns, limits.max_queue_wait_seconds
        )
        self.starts.configure(limits.max_concurrent_starts)

    def slot(
        self, clock: QueueClock, on_queued: Callable[[], None] | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """One running turn's slot (waits in the FIFO queue; may refuse: `overloaded`)."""
        return self.turns.slot(clock, on_queued)

    @property
    def running_count(self) -> int:
        return self.turns.running_count

    @property
    def queue_depth(self) -> int:
        return self.turns.queue_depth


def unlimited() -> Capacity:
    """No cap worth the name (tests of other parts)."""
    return Capacity(Limits(10**6, 10**6, 10**6, 3600.0, 10**6))
