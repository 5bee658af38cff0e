"""The registry: which Claude Code processes are live, which turns run on
them right now (one per session), and their end (idle reaping, shutdown).

Every live process enters through `adopt` or `process_for` and every running
turn through `begin_turn`, so a cap on live processes (with LRU eviction) and
a cap on running turns each have one place to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from core_service.agent.options import ProcessShape, SessionStart, same_process
from core_service.agent.pool import ProcessPool
from core_service.agent.process import AgentProcess, ProcessFactory
from core_service.agent.workspace_layout import Place
from core_service.errors import Busy, Unavailable
from core_service.turns.running import TurnProcess, interrupt

log = logging.getLogger("ccapi.sessions")

CANCEL_WAIT_SECONDS = 5.0


@dataclass
class RunningTurn:
    """A turn in progress on a process; `cancel_requested` is set from outside."""

    process: TurnProcess
    cancel_requested: bool = False


class ProcessRegistry:
    def __init__(self, factory: ProcessFactory, pool: ProcessPool, idle_seconds: float) -> None:
        self._factory = factory
        self.pool = pool
        self._idle_seconds = idle_seconds
        self._live: dict[str, AgentProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, RunningTurn] = {}
        # Sessions whose process waits for client tool results between RunTurns.
        self._kept_open: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.accepting = True

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
        async with lock:
            yield

    def adopt(self, session_id: str, process: AgentProcess) -> None:
        """A pooled process now serves this session."""
        self._live[session_id] = process

    async def process_for(
        self, session_id: str, place: Place, shape: ProcessShape, start: SessionStart
    ) -> AgentProcess:
        """The session's live process, (re)started when it is gone or of another shape."""
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
            self._live.pop(session_id, None)
            await live.close()
        try:
            process = await self._factory.start(place, shape, start)
        except Exception as error:
            log.exception("could not start Claude Code", extra={"session_id": session_id})
            raise Unavailable(
                f"Claude Code could not start: {type(error).__name__}", reason="agent_unavailable"
            ) from error
        self._live[session_id] = process
        return process

    def forget(self, process: AgentProcess) -> None:
        """A process that must not serve another turn (its turn was abandoned)."""
        self._live.pop(process.session_id, None)

    async def close_session(self, session_id: str) -> None:
        process = self._live.pop(session_id, None)
        if process is not None:
            await process.close()

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

    def begin_turn(self, turn_id: str, process: TurnProcess) -> RunningTurn:
        running = RunningTurn(process)
        self._running[turn_id] = running
        return running

    def end_turn(self, turn_id: str) -> None:
        self._running.pop(turn_id, None)

    async def cancel(self, turn_id: str) -> bool:
        """Interrupts a turn running here and waits (briefly) for it to end.
        False when no such turn runs in this process."""
        running = self._running.get(turn_id)
        if running is None:
            return False
        running.cancel_requested = True
        await interrupt(running.process)
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while turn_id in self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return True

    # The end

    async def _reap_idle_forever(self) -> None:
        while True:
            idle = self._idle_seconds
            await asyncio.sleep(min(10.0, max(0.5, idle / 4)))
            now = time.monotonic()
            for session_id, process in list(self._live.items()):
                lock = self._locks.get(session_id)
                if (lock is not None and lock.locked()) or session_id in self._kept_open:
                    continue
                if now - process.last_used > idle:
                    self._live.pop(session_id, None)
                    await process.close()

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
        if self._reaper is not None:
            self._reaper.cancel()
        await self.pool.close()
        live, self._live = list(self._live.values()), {}
        await asyncio.gather(*(p.close() for p in live))
