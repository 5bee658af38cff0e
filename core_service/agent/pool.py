"""Pre-started Claude Code processes for new conversations.

Starting Claude Code costs about 0.3 s; a new conversation takes a process
that is already connected (with its own fresh workspace) and the pool starts
a replacement in the background. Entries idle longer than the configured time
are closed, so an idle service holds no processes; the next use refills it.

The pool counts inside the core's cap on live processes: it refills only
while `room()` says a slot is free (it never evicts a conversation's process
for a spare one), and a conversation that needs a slot may take back a ready
entry (`evict`). A process taken counts as the pool's until the registry
adopts it, so no refill can slip past the cap in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from core_service.agent.options import ProcessShape, SessionStart, same_process
from core_service.agent.process import AgentProcess, ProcessFactory
from core_service.agent.workspace_layout import WorkspaceLayout

log = logging.getLogger("ccapi.pool")


class ProcessPool:
    def __init__(
        self,
        factory: ProcessFactory,
        layout: WorkspaceLayout,
        shape: ProcessShape,
        size: int,
        idle_seconds: float,
        starts: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.shape = shape
        self._factory = factory
        self._layout = layout
        self._size = max(0, size)
        self._idle_seconds = idle_seconds
        self._ready: list[AgentProcess] = []
        self._starting = 0
        # Taken for a conversation, not yet adopted by the registry.
        self._taken: list[AgentProcess] = []
        # Processes the pool itself is ending (idle, resized away): they hold
        # their slot until they have exited. (Evicted ones the registry counts.)
        self._ending = 0
        # Whether the live-process cap leaves a slot for one more (the registry's).
        self.room: Callable[[], bool] = lambda: True
        # Paces CLI starts with the registry's (capacity.StartPacer.start).
        self._starts = starts or contextlib.nullcontext
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._started = False

    def start(self) -> None:
        self._started = True
        if self._size and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever())
            self._refill()

    def take(self, shape: ProcessShape) -> AgentProcess | None:
        """A ready process for a new conversation of this shape, or None.
        The model may differ: it is switched per turn without a restart."""
        if self._closed or not self._size:
            return None
        if not same_process(self.shape, shape):
            return None
        process = self._ready.pop() if self._ready else None
        if process is not None:
            self._taken.append(process)
        self._refill()
        return process

    def handed_over(self, process: AgentProcess) -> None:
        """The registry adopted a taken process: it counts there now."""
        self._taken = [p for p in self._taken if p is not process]

    @property
    def held_count(self) -> int:
        """Processes counted against the cap on the pool's behalf. Read-only:
        the metrics scrape calls it from another thread."""
        taken = sum(1 for p in list(self._taken) if not p.closed)
        return len(self._ready) + self._starting + taken + self._ending

    def ready_processes(self) -> list[AgentProcess]:
        """Ready entries (eviction candidates), oldest first."""
        return sorted(self._ready, key=lambda p: p.last_used)

    def evict(self, process: AgentProcess) -> asyncio.Task[None] | None:
        """Takes a ready entry out at once (its slot is free from now) and closes
        it in the background; None when it is no longer ready."""
        if not any(p is process for p in self._ready):
            return None
        self._ready = [p for p in self._ready if p is not process]
        return self._spawn(self._discard(process))

    def refill(self) -> None:
        """Tops the pool up if the cap has room (a slot was freed)."""
        if self._reaper is not None:
            self._refill()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def resize(self, size: int) -> None:
        """Changes the pool's size (live configuration); extra processes close."""
        self._size = max(0, size)
        while len(self._ready) > self._size:
            self._spawn(self._end(self._ready.pop()))
        if self._reaper is not None:
            self._refill()
        elif self._size and not self._closed and self._started:
            self.start()

    @property
    def size(self) -> int:
        """Processes the pool keeps ready (configured, live)."""
        return self._size

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Waits until the pool is full (benchmarks and tests use this)."""
        deadline = time.monotonic() + timeout
        while len(self._ready) < self._size and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _refill(self) -> None:
        while not self._closed and len(self._ready) + self._starting < self._size and self.room():
            self._starting += 1
            self._spawn(self._start_one())

    async def _start_one(self) -> None:
        try:
            place = await asyncio.to_thread(self._layout.new_place)
        except Exception:
            # The pool only saves start-up time: a failed pre-start is logged and
            # the next conversation starts its own process instead.
            log.exception("could not prepare a workspace")
            self._starting -= 1
            return
        try:
            async with self._starts():
                process = await self._factory.start(
                    place, self.shape, SessionStart(session_id=str(uuid.uuid4()))
                )
        except Exception:
            # As above: logged, and new conversations start cold meanwhile.
            log.exception("could not pre-start a Claude Code process")
            self._layout.remove(place)
            await asyncio.sleep(5)  # don't spin when Claude Code cannot start
            self._starting -= 1
            self._refill()
            return
        self._starting -= 1
        if self._closed:
            await self._end(process)
        else:
            self._ready.append(process)

    async def _discard(self, process: AgentProcess) -> None:
        await process.close()
        self._layout.remove(process.place)

    async def _end(self, process: AgentProcess) -> None:
        """Ends a process the pool gives up on its own, counted until it has exited."""
        self._ending += 1
        try:
            await self._discard(process)
        finally:
            self._ending -= 1

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.5, self._idle_seconds / 4)))
            now = time.monotonic()
            stale = [p for p in self._ready if now - p.last_used > self._idle_seconds]
            for process in stale:
                self._ready.remove(process)
                await self._end(process)

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        ready, self._ready = self._ready, []
        await asyncio.gather(*(self._discard(p) for p in ready))
