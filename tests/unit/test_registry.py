"""The registry: one turn at a time per session, cancel requests that reach
a running turn, and the cap on live processes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import pytest

from core_service.agent.options import ProcessShape, SessionStart
from core_service.agent.pool import ProcessPool
from core_service.agent.process import AgentProcess, ProcessFactory
from core_service.agent.workspace_layout import Place, WorkspaceLayout
from core_service.errors import Busy, Cancelled, Unavailable
from core_service.turns.capacity import Capacity, Limits
from core_service.turns.registry import ProcessRegistry
from tests.unit.recorded import FakeClient, FakeProcess


def registry() -> ProcessRegistry:
    # Neither starts a process in these tests.
    return ProcessRegistry(cast(ProcessFactory, None), cast(ProcessPool, None), 600.0)


async def test_a_second_turn_on_a_busy_session_is_refused_not_queued() -> None:
    reg = registry()
    async with reg.session_lock("s-1"):
        with pytest.raises(Busy) as raised:
            async with reg.session_lock("s-1"):
                pass
        assert raised.value.param == "session_id"
        async with reg.session_lock("s-2"):
            pass  # other sessions are not held up
    async with reg.session_lock("s-1"):
        pass  # free again once the turn ended


async def test_cancel_interrupts_the_running_turn_and_waits_for_its_end() -> None:
    reg = registry()
    process = FakeProcess(FakeClient([]))
    running = reg.begin_turn("t-1", process)
    assert reg.running_turns == 1

    async def turn_ends_when_interrupted() -> None:
        while not process.client.interrupts:
            await asyncio.sleep(0.01)
        reg.end_turn("t-1")

    ending = asyncio.create_task(turn_ends_when_interrupted())
    assert await reg.cancel("t-1")
    await ending
    assert running.cancel_requested and reg.running_turns == 0
    assert not await reg.cancel("t-1")  # nothing runs here any more


# The cap on live processes: LRU eviction of idle ones, never of a process
# with an open turn; the pool counts inside it.


@dataclass
class LiveFake:
    """A started process as the registry and the pool see it."""

    session_id: str
    place: Place
    shape: ProcessShape
    client: FakeClient = field(default_factory=lambda: FakeClient([]))
    stderr_tail: list[str] = field(default_factory=list)
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False
    reported_cost_usd: float = 0.0

    def discard_stray_messages(self) -> int:
        return 0

    async def close(self) -> None:
        self.closed = True


class FakeFactory:
    def __init__(self) -> None:
        self.started: list[LiveFake] = []

    async def start(self, place: Place, shape: ProcessShape, start: SessionStart) -> LiveFake:
        await asyncio.sleep(0)
        process = LiveFake(start.session_id, place, shape)
        self.started.append(process)
        return process


class FakeLayout:
    def new_place(self) -> Place:
        return Place("w", "h", None)

    def remove(self, place: Place) -> None:
        pass


SHAPE = ProcessShape(model="claude-sonnet-4-5")
PLACE = Place("w", "h", None)


def capped(
    max_live: int, pool_size: int = 0, wait: float = 5.0
) -> tuple[ProcessRegistry, FakeFactory, ProcessPool]:
    factory = FakeFactory()
    pool = ProcessPool(
        cast(ProcessFactory, factory), cast(WorkspaceLayout, FakeLayout()), SHAPE, pool_size, 600
    )
    capacity = Capacity(Limits(max_live, max_live, 10, wait, 2))
    reg = ProcessRegistry(cast(ProcessFactory, factory), pool, 600.0, capacity)
    return reg, factory, pool


async def turn(reg: ProcessRegistry, session_id: str) -> AgentProcess:
    """One short turn on the session, as the turn service runs it."""
    async with reg.session_lock(session_id):
        process = await reg.process_for(session_id, PLACE, SHAPE, SessionStart(session_id))
        reg.begin_turn("t-" + session_id, process)
        reg.end_turn("t-" + session_id)
        process.last_used = time.monotonic()
        return process


async def test_a_start_at_the_cap_evicts_the_least_recently_used_idle_process() -> None:
    reg, _, _ = capped(max_live=2)
    a = await turn(reg, "a")
    b = await turn(reg, "b")
    await turn(reg, "a")  # a is now the more recently used
    c = await turn(reg, "c")
    await asyncio.sleep(0)
    assert reg.live_sessions() == {"a", "c"} and reg.live_count == 2
    assert b.closed and not a.closed and not c.closed
    # b resumes on demand: a new process, and the oldest idle one (a) goes.
    b2 = await turn(reg, "b")
    await asyncio.sleep(0)
    assert b2 is not b and reg.live_sessions() == {"b", "c"} and a.closed


async def test_a_process_with_an_open_turn_is_never_evicted() -> None:
    reg, _, _ = capped(max_live=2, wait=0.3)
    a = await turn(reg, "a")
    b = await turn(reg, "b")
    # a's turn stays open with no session lock held (as while it waits for
    # a client's tool results); b is idle.
    reg.begin_turn("t-open", a)
    await turn(reg, "c")
    await asyncio.sleep(0)
    assert b.closed and not a.closed and reg.live_sessions() == {"a", "c"}
    # Both slots busy (a's open turn, c's session in a turn): the start waits,
    # then is refused with overloaded rather than exceeding the cap.
    async with reg.session_lock("c"):
        with pytest.raises(Unavailable) as refused:
            await turn(reg, "d")
    assert refused.value.reason == "overloaded"
    assert reg.live_count == 2 and not a.closed


async def test_a_waiting_start_takes_the_slot_a_finished_turn_frees() -> None:
    reg, _, _ = capped(max_live=1)
    a = await turn(reg, "a")
    reg.begin_turn("t-open", a)
    waiting = asyncio.create_task(turn(reg, "b"))
    await asyncio.sleep(0.05)
    assert not waiting.done() and reg.live_count == 1
    reg.end_turn("t-open")
    b = await asyncio.wait_for(waiting, 2)
    await asyncio.sleep(0)
    assert a.closed and reg.live_sessions() == {"b"} and not b.closed


async def test_the_pool_counts_inside_the_cap_and_refills_only_into_free_slots() -> None:
    reg, factory, pool = capped(max_live=2, pool_size=1)
    reg.start(with_pool=True)
    await pool.wait_ready(2)
    assert pool.ready_count == 1 and reg.live_count == 1
    await turn(reg, "a")
    assert reg.live_count == 2
    # The cap is full: a new conversation evicts the idle pooled entry (the
    # older), and no refill exceeds the cap.
    await turn(reg, "b")
    await asyncio.sleep(0.05)
    assert pool.ready_count == 0 and reg.live_count == 2
    assert len([p for p in factory.started if not p.closed]) == 2
    # A taken pooled process counts until it is adopted.
    await reg.close_session("a")
    await pool.wait_ready(2)
    taken = pool.take(SHAPE)
    assert taken is not None and reg.live_count == 2
    pool.refill()
    await asyncio.sleep(0.05)
    assert reg.live_count == 2
    reg.adopt("c", taken)
    assert reg.live_count == 2 and reg.live_sessions() == {"b", "c"}
    await reg.shutdown(0)


async def test_lowering_the_cap_evicts_idle_processes_at_once() -> None:
    reg, _, _ = capped(max_live=3)
    for name in "abc":
        await turn(reg, name)
    reg.capacity.max_live_processes = 1
    reg.trim()
    assert reg.live_sessions() == {"c"}  # out of reach at once
    await asyncio.sleep(0.01)
    assert reg.live_count == 1  # and out of the count once they have exited


async def test_the_session_lock_table_holds_only_sessions_in_a_turn() -> None:
    reg = registry()
    for n in range(50):
        async with reg.session_lock(f"s-{n}"):
            assert reg.lock_count == 1
    assert reg.lock_count == 0
    with pytest.raises(Busy):
        async with reg.session_lock("x"):
            async with reg.session_lock("x"):
                pass
    assert reg.lock_count == 0


def test_a_claimed_turn_counts_as_running_here_until_it_ends() -> None:
    # Stored but still waiting for a process slot: crash recovery must not
    # take it for a dead core's turn.
    reg = registry()
    reg.claim("t1")
    assert reg.running_turn_ids() == {"t1"}
    reg.end_turn("t1")
    assert reg.running_turn_ids() == set()


# Cancelled while waiting for a process slot (CancelTurn before the turn runs).


async def test_a_cancel_ends_a_turn_still_waiting_for_a_process_slot() -> None:
    reg, factory, _ = capped(max_live=1)
    a = await turn(reg, "a")
    reg.begin_turn("t-open", a)  # the only slot stays busy
    reg.claim("t-b")
    outcome: list[str] = []

    async def turn_b() -> None:
        async with reg.session_lock("b"):
            try:
                await reg.process_for("b", PLACE, SHAPE, SessionStart("b"), "t-b")
                outcome.append("started")
            except Cancelled:
                outcome.append("cancelled")
            finally:
                reg.end_turn("t-b")  # as the turn service does, once stored

    waiting = asyncio.create_task(turn_b())
    await asyncio.sleep(0.05)
    assert not waiting.done() and "t-b" in reg.running_turn_ids()
    assert await reg.cancel("t-b")
    await asyncio.wait_for(waiting, 2)
    assert outcome == ["cancelled"]
    # Nothing was started for it, and its reservation is not held.
    assert len(factory.started) == 1 and reg.live_count == 1
    assert "t-b" not in reg.running_turn_ids()
    # The slot, once free, goes to the next start as usual.
    reg.end_turn("t-open")
    c = await asyncio.wait_for(turn(reg, "c"), 2)
    assert not c.closed and reg.live_sessions() == {"c"}


# Every process end goes through the registry: one still exiting keeps its slot.


class SlowClose(LiveFake):
    exited: asyncio.Event

    async def close(self) -> None:
        self.closed = True
        await self.exited.wait()


async def test_an_abandoned_process_counts_against_the_cap_until_it_has_exited() -> None:
    reg, factory, _ = capped(max_live=1)
    slow = SlowClose("a", PLACE, SHAPE)
    slow.exited = asyncio.Event()
    reg.adopt("a", cast(AgentProcess, slow))
    reg.begin_turn("t-a", slow)
    # The turn is abandoned (or the watchdog ends its process): it is retired.
    ending = asyncio.ensure_future(reg.retire(cast(AgentProcess, slow), interrupt_first=True))
    reg.end_turn("t-a")
    await asyncio.sleep(0.05)
    assert slow.client.interrupts and reg.live_sessions() == set()
    assert reg.live_count == 1  # still exiting: its memory is not free yet
    starting = asyncio.create_task(turn(reg, "b"))
    await asyncio.sleep(0.05)
    assert not starting.done() and not factory.started
    # Ending it again waits for the same ending rather than freeing the slot.
    again = asyncio.ensure_future(reg.retire(cast(AgentProcess, slow)))
    await asyncio.sleep(0.05)
    assert not again.done() and reg.live_count == 1
    slow.exited.set()
    await asyncio.wait_for(asyncio.gather(ending, again, starting), 2)
    assert reg.live_sessions() == {"b"} and reg.live_count == 1


async def test_a_cancel_while_the_turn_is_stored_stops_it_even_with_a_live_process() -> None:
    reg, factory, _ = capped(max_live=2)
    await turn(reg, "a")  # a's process is live and idle: no wait for a slot
    reg.claim("t-next")
    cancelling = asyncio.create_task(reg.cancel("t-next"))
    await asyncio.sleep(0.01)
    with pytest.raises(Cancelled):
        await reg.process_for("a", PLACE, SHAPE, SessionStart("a"), "t-next")
    reg.end_turn("t-next")
    assert await cancelling and len(factory.started) == 1


async def test_a_pooled_process_the_pool_gives_up_counts_until_it_has_exited() -> None:
    reg, factory, pool = capped(max_live=2, pool_size=1)
    reg.start(with_pool=True)
    await pool.wait_ready(2)
    pooled = factory.started[0]
    exited = asyncio.Event()

    async def slow_close() -> None:
        pooled.closed = True
        await exited.wait()

    pooled.close = slow_close  # type: ignore[method-assign]
    pool.resize(0)  # the pool ends its entry itself
    await asyncio.sleep(0.05)
    assert pool.ready_count == 0 and reg.live_count == 1  # still exiting
    exited.set()
    await asyncio.sleep(0.05)
    assert reg.live_count == 0
    await reg.shutdown(0)
