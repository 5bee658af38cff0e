"""The registry: which Claude Code processes are live, which turns run on
them right now (one per session), and their end (idle reaping, eviction,
shutdown).

Every live process enters through `adopt` or `process_for` and every open
turn through `begin_turn`; every process ends through `retire` (or eviction,
which uses it), so a process that is still exiting keeps its slot. Live
processes are capped (`Capacity`): the pool's count inside the cap, and a
process start that finds the cap reached first evicts the least recently
used idle process (a pool entry or a conversation's process that has no open
turn and whose session is not in a turn's hands); that conversation resumes
from its transcript on its next turn, as after idle reaping. When every slot
is busy the start waits, up to the queue's wait limit, for one to free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

from core_service.agent.options import ProcessShape, SessionStart, same_process
from core_service.agent.pool import ProcessPool
from core_service.agent.process import AgentProcess, ProcessFactory
from core_service.agent.workspace_layout import Place
from core_service.errors import Busy, Cancelled, Unavailable
from core_service.turns.capacity import Capacity, overloaded, unlimited
from core_service.turns.running import TurnProcess, interrupt

log = logging.getLogger("ccapi.sessions")

CANCEL_WAIT_SECONDS = 5.0
# How long interrupted turns get to wind up at shutdown before processes end.
SHUTDOWN_CANCEL_SECONDS = 5.0
# A start waiting for a slot looks again at least this often (besides being
# woken when a turn ends or a process goes).
SLOT_RECHECK_SECONDS = 0.5


@dataclass
class RunningTurn:
    """A turn in progress on a process; `cancel_requested` is set from outside."""

    process: TurnProcess
    cancel_requested: bool = False


class ProcessRegistry:
    def __init__(
        self,
        factory: ProcessFactory,
        pool: ProcessPool,
        idle_seconds: float,
        capacity: Capacity | None = None,
    ) -> None:
        self._factory = factory
        self.pool = pool
        self._idle_seconds = idle_seconds
        self.capacity = capacity or unlimited()
        self._live: dict[str, AgentProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, RunningTurn] = {}
        # Turns stored and getting a process; the event is set by a cancel
        # that arrives before the turn runs.
        self._claimed: dict[str, asyncio.Event] = {}
        # Slots reserved by starts in progress (process_for), and held by
        # evicted processes until they have exited.
        self._starting = 0
        self._closing = 0
        # Processes being ended by `retire`, by id(process): one ending each.
        self._retiring: dict[int, asyncio.Future[None]] = {}
        # Set (and replaced) whenever a slot may have freed: waiting starts look again.
        self._freed = asyncio.Event()
        # Sessions whose process waits for client tool results between RunTurns.
        self._kept_open: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.accepting = True
        if pool is not None:
            pool.room = self.has_room

    # Gauges (read-only)

    @property
    def live_count(self) -> int:
        """Live Claude Code processes, counted as the cap counts them: the
        conversations', those starting, and the pool's."""
        pooled = self.pool.held_count if self.pool is not None else 0
        return len(self._live) + self._starting + self._closing + pooled

    @property
    def running_count(self) -> int:
        """Turns open on a process (including one waiting for client tool results)."""
        return len(self._running)

    @property
    def queue_depth(self) -> int:
        """Turns waiting for a running slot."""
        return self.capacity.queue_depth

    @property
    def lock_count(self) -> int:
        return len(self._locks)

    def has_room(self) -> bool:
        return self.live_count < self.capacity.max_live_processes

    def start(self, with_pool: bool) -> None:
        if with_pool:
            self.pool.start()
        self._reaper = asyncio.create_task(self._reap_idle_forever())

    # Sessions and their processes

    def live_sessions(self) -> set[str]:
        return set(self._live)

    @contextlib.asynccontextmanager
    async def session_lock(self, session_id: str) -> AsyncIterator[None]:
        """One turn at a time per session: a second one is refused, not queued."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        if lock.locked():
            raise Busy(
                "This session is already running a turn; wait for it to finish.",
                param="session_id",
            )
        try:
            async with lock:
                yield
        finally:
            # Nobody waits on a session lock (a second turn is refused), so a
            # free one can go: the table holds only sessions in a turn.
            if self._locks.get(session_id) is lock and not lock.locked():
                del self._locks[session_id]
            self._slot_may_have_freed()

    def adopt(self, session_id: str, process: AgentProcess) -> None:
        """A pooled process now serves this session."""
        if self.pool is not None:
            self.pool.handed_over(process)
        self._live[session_id] = process

    async def process_for(
        self,
        session_id: str,
        place: Place,
        shape: ProcessShape,
        start: SessionStart,
        turn_id: str | None = None,
    ) -> AgentProcess:
        """The session's live process, (re)started when it is gone or of another
        shape. With `turn_id` (claimed), a cancel of that turn while it waits
        for a slot ends the wait with `Cancelled` and starts nothing."""
        cancelled = self._claimed.get(turn_id) if turn_id is not None else None
        if cancelled is not None and cancelled.is_set():
            raise _cancelled_before_start()  # while the turn was being stored
        live = self._live.get(session_id)
        if live is not None and not live.closed and same_process(live.shape, shape):
            stray = live.discard_stray_messages()
            if not stray:
                return live
            # Claude Code acted with no turn open (a backstop: background work
            # is refused): a fresh process resumed from the transcript cannot
            # hand this turn an earlier answer.
            log.warning(
                "claude process answered between turns; restarting it",
                extra={"session_id": session_id, "stray_messages": stray},
            )
        if live is not None:
            await self.retire(live)
        await self._unless_cancelled(self._reserve_slot(session_id), cancelled)
        try:
            async with self.capacity.starts.start():
                if cancelled is not None and cancelled.is_set():
                    raise _cancelled_before_start()
                process = await self._factory.start(place, shape, start)
        except Cancelled:
            raise
        except Exception as error:
            log.exception("could not start Claude Code", extra={"session_id": session_id})
            raise Unavailable(
                f"Claude Code could not start: {type(error).__name__}", reason="agent_unavailable"
            ) from error
        finally:
            self._starting -= 1
            self._slot_may_have_freed()
        self._live[session_id] = process
        if cancelled is not None and cancelled.is_set():
            # Cancelled while it started: the process stays the session's, idle.
            raise _cancelled_before_start()
        return process

    async def _unless_cancelled(
        self, wait: Awaitable[None], cancelled: asyncio.Event | None
    ) -> None:
        """Reserves a slot by `wait`, unless `cancelled` is set first: then the
        wait ends (any slot it got given back) with `Cancelled`."""
        if cancelled is None:
            await wait
            return
        waiting = asyncio.ensure_future(wait)
        cancel = asyncio.ensure_future(cancelled.wait())
        proceed = False
        try:
            await asyncio.wait({waiting, cancel}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done() and not cancelled.is_set():
                waiting.result()  # at capacity: raises overloaded
                proceed = True
        finally:
            cancel.cancel()
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            got_slot = waiting.done() and not waiting.cancelled() and not waiting.exception()
            if got_slot and not proceed:
                self._starting -= 1
                self._slot_may_have_freed()
        if not proceed:
            raise _cancelled_before_start()

    def running_turn_ids(self) -> set[str]:
        """Turns this process is running now, or has stored and is getting a
        process for (crash recovery leaves them alone)."""
        return set(self._running) | set(self._claimed)

    def claim(self, turn_id: str) -> None:
        """A turn about to be stored: it is this core's from now on, even while
        it waits for a process slot (end_turn releases it)."""
        self._claimed.setdefault(turn_id, asyncio.Event())

    async def _reserve_slot(self, session_id: str) -> None:
        """Takes one live-process slot for a start: a free one, else the one an
        evicted idle process gives up once it has exited, else the first to
        free up in time."""
        deadline = time.monotonic() + self.capacity.turns.max_wait_seconds
        while True:
            if self.has_room():
                self._starting += 1
                return
            victim = self._least_recently_used_idle()
            if victim is not None:
                log.info(
                    "evicting an idle Claude Code process to make room",
                    extra={"session_id": victim.session_id, "for_session": session_id},
                )
                await self._evict(victim)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise overloaded(
                    "The service is at capacity: every Claude Code process is busy; retry later.",
                    self.capacity.turns.retry_after(),
                )
            freed = self._freed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), min(left, SLOT_RECHECK_SECONDS))

    def _busy_processes(self) -> set[int]:
        return {id(running.process) for running in self._running.values()}

    def _idle_by_age(self) -> list[AgentProcess]:
        """Idle processes, least recently used first: no open turn on them, no
        turn waiting for client tool results (kept open between RunTurns), and
        their session not in a turn's hands."""
        busy = self._busy_processes()
        candidates = [
            process
            for session_id, process in self._live.items()
            if id(process) not in busy
            and session_id not in self._locks
            and session_id not in self._kept_open
        ]
        if self.pool is not None:
            candidates.extend(self.pool.ready_processes())
        return sorted(candidates, key=lambda p: p.last_used)

    def _least_recently_used_idle(self) -> AgentProcess | None:
        idle = self._idle_by_age()
        return idle[0] if idle else None

    def _evict(self, process: AgentProcess) -> Awaitable[None]:
        """Takes an idle process out of reach at once (no turn can pick it up
        after this) and returns its ending to await (see `retire`)."""
        pooled = self.pool.evict(process) if self.pool is not None else None
        if pooled is None:
            return self.retire(process)
        self._closing += 1
        return self._closed_counted(pooled)

    def retire(self, process: AgentProcess, interrupt_first: bool = False) -> Awaitable[None]:
        """Ends a process that must serve no more turns (idle, abandoned, stalled,
        of the wrong shape): out of reach at once, and counted against the cap
        until it has exited, since its memory is only free then. Returns its
        ending to await; ending a process twice waits for the one ending."""
        ending = self._retiring.get(id(process))
        if ending is not None:
            return asyncio.shield(ending)
        if self._live.get(process.session_id) is process:
            del self._live[process.session_id]
        self._closing += 1
        ending = asyncio.ensure_future(self._closed_counted(self._end(process, interrupt_first)))
        self._retiring[id(process)] = ending
        ending.add_done_callback(lambda _: self._retiring.pop(id(process), None))
        # Shielded: a caller that goes away does not cut the ending short.
        return asyncio.shield(ending)

    @staticmethod
    async def _end(process: AgentProcess, interrupt_first: bool) -> None:
        if interrupt_first:
            await interrupt(process)  # stops a model call first; bounded, never raises
        await process.close()

    async def _closed_counted(self, ending: Awaitable[None]) -> None:
        try:
            await ending
        finally:
            self._closing -= 1
            self._slot_may_have_freed()

    def trim(self) -> None:
        """Evicts idle processes beyond the cap (after the cap was lowered)."""
        excess = self.live_count - self.capacity.max_live_processes
        for victim in self._idle_by_age()[: max(0, excess)]:
            task = asyncio.ensure_future(self._evict(victim))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _slot_may_have_freed(self) -> None:
        self._freed.set()
        self._freed = asyncio.Event()

    async def close_session(self, session_id: str) -> None:
        process = self._live.get(session_id)
        if process is not None:
            await self._evict(process)
            if self.pool is not None:
                self.pool.refill()

    # Turns that wait for the client (client tools)

    def keep_open(self, session_id: str) -> None:
        """The session's process is inside a turn that waits for client tool
        results: it is not idle (never reaped) until `let_go`."""
        self._kept_open.add(session_id)

    def let_go(self, session_id: str) -> None:
        self._kept_open.discard(session_id)

    def kept_open(self, session_id: str) -> bool:
        return session_id in self._kept_open

    # Running turns

    @property
    def running_turns(self) -> int:
        return len(self._running)

    def has_open_turn(self, process: TurnProcess) -> bool:
        return id(process) in self._busy_processes()

    def end_turn(self, turn_id: str) -> None:
        self._running.pop(turn_id, None)
        self._claimed.pop(turn_id, None)
        self._slot_may_have_freed()

    async def cancel(self, turn_id: str) -> bool:
        """Interrupts a turn running here, or ends one still waiting for a
        process slot, and waits (briefly) for it to end. False when no such
        turn is here."""
        running = self._running.get(turn_id)
        claimed = self._claimed.get(turn_id)
        if running is not None:
            running.cancel_requested = True
            await interrupt(running.process)
        elif claimed is not None:
            claimed.set()
        else:
            return False
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while (turn_id in self._running or turn_id in self._claimed) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        return True

    def begin_turn(self, turn_id: str, process: TurnProcess) -> RunningTurn:
        running = RunningTurn(process)
        self._running[turn_id] = running
        return running

    # The end

    async def _reap_idle_forever(self) -> None:
        while True:
            idle = self._idle_seconds
            await asyncio.sleep(min(10.0, max(0.5, idle / 4)))
            now = time.monotonic()
            busy = self._busy_processes()
            for session_id, process in list(self._live.items()):
                lock = self._locks.get(session_id)
                if (
                    (lock is not None and lock.locked())
                    or id(process) in busy
                    or session_id in self._kept_open
                ):
                    continue
                if now - process.last_used > idle and self._live.get(session_id) is process:
                    await self._evict(process)
            self.trim()
            if self.pool is not None:
                self.pool.refill()

    async def shutdown(self, grace_seconds: float) -> None:
        """Lets running turns finish for `grace_seconds`, then interrupts them,
        and ends every Claude Code process."""
        self.accepting = False
        deadline = time.monotonic() + grace_seconds
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for running in list(self._running.values()):
            running.cancel_requested = True
            await interrupt(running.process)
        # Interrupted turns wind up (stored as cancelled) before their
        # processes are killed under them.
        deadline = time.monotonic() + SHUTDOWN_CANCEL_SECONDS
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self._reaper is not None:
            self._reaper.cancel()
        await self.pool.close()
        live = list(self._live.values())
        await asyncio.gather(
            *(self.retire(p) for p in live),
            *list(self._retiring.values()),
            *list(self._background),
        )


def _cancelled_before_start() -> Cancelled:
    return Cancelled("The turn was cancelled before it started.", reason="cancelled")
