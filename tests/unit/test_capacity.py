"""The admission queue and the start pacer: a cap on turns running at once
with a bounded FIFO queue in front (refusing with `overloaded` and a retry
delay), and a cap on Claude Code starts at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import pytest

from core_service.errors import Unavailable
from core_service.turns.capacity import StartPacer, TurnGate


@dataclass
class Clock:
    queue_ms: int = 0


async def hold(gate: TurnGate, order: list[str], name: str, release: asyncio.Event) -> Clock:
    clock = Clock()
    async with gate.slot(clock):
        order.append(name)
        await release.wait()
    return clock


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_over_the_cap_wait_and_enter_first_come_first_served() -> None:
    gate = TurnGate(max_running=2, max_queued=10, max_wait_seconds=5)
    order: list[str] = []
    gates = {name: asyncio.Event() for name in "abcde"}
    tasks = {}
    for name in "abcde":
        tasks[name] = asyncio.create_task(hold(gate, order, name, gates[name]))
        await settle()
    assert order == ["a", "b"]
    assert gate.running_count == 2 and gate.queue_depth == 3
    gates["b"].set()
    await settle()
    assert order == ["a", "b", "c"]
    gates["a"].set()
    await settle()
    assert order == ["a", "b", "c", "d"] and gate.queue_depth == 1
    for event in gates.values():
        event.set()
    clocks = {name: await task for name, task in tasks.items()}
    assert order == list("abcde")
    assert gate.running_count == 0 and gate.queue_depth == 0
    assert clocks["a"].queue_ms == 0


async def test_a_full_queue_refuses_at_once_with_overloaded_and_a_retry_delay() -> None:
    gate = TurnGate(max_running=1, max_queued=1, max_wait_seconds=5)
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], "a", release))
    waiting = asyncio.create_task(hold(gate, [], "b", release))
    await settle()
    with pytest.raises(Unavailable) as refused:
        async with gate.slot(Clock()):
            pass
    error = refused.value
    assert error.code == grpc.StatusCode.UNAVAILABLE and error.reason == "overloaded"
    assert error.retry_after_seconds is not None and error.retry_after_seconds >= 1
    release.set()
    await asyncio.gather(running, waiting)


async def test_a_turn_that_waits_too_long_is_refused_and_its_wait_is_recorded() -> None:
    gate = TurnGate(max_running=1, max_queued=5, max_wait_seconds=0.2)
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], "a", release))
    await settle()
    clock = Clock()
    with pytest.raises(Unavailable) as refused:
        async with gate.slot(clock):
            pass
    assert refused.value.reason == "overloaded"
    assert 150 <= clock.queue_ms < 2000
    assert gate.queue_depth == 0 and gate.running_count == 1
    release.set()
    await running
    assert gate.running_count == 0


async def test_a_waiter_that_goes_away_leaves_no_slot_behind() -> None:
    gate = TurnGate(max_running=1, max_queued=5, max_wait_seconds=5)
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], "a", release))
    await settle()
    gone = asyncio.create_task(hold(gate, [], "b", release))
    await settle()
    gone.cancel()
    await settle()
    assert gate.queue_depth == 0
    release.set()
    await running
    assert gate.running_count == 0
    order: list[str] = []
    await hold(gate, order, "c", release)
    assert order == ["c"] and gate.running_count == 0


async def test_raising_the_cap_lets_waiters_in_at_once() -> None:
    gate = TurnGate(max_running=1, max_queued=5, max_wait_seconds=5)
    order: list[str] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, order, n, release)) for n in "abc"]
    await settle()
    assert order == ["a"]
    gate.configure(max_running=3, max_queued=5, max_wait_seconds=5)
    await settle()
    assert order == ["a", "b", "c"]
    release.set()
    await asyncio.gather(*tasks)


async def test_no_queue_means_a_turn_over_the_cap_is_refused() -> None:
    gate = TurnGate(max_running=1, max_queued=0, max_wait_seconds=5)
    release = asyncio.Event()
    running = asyncio.create_task(hold(gate, [], "a", release))
    await settle()
    with pytest.raises(Unavailable):
        async with gate.slot(Clock()):
            pass
    release.set()
    await running


async def test_the_pacer_lets_only_its_limit_of_starts_run_at_once() -> None:
    pacer = StartPacer(limit=2)
    active = peak = 0

    async def start() -> None:
        nonlocal active, peak
        async with pacer.start():
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    await asyncio.gather(*(start() for _ in range(10)))
    assert peak == 2 and pacer.starting_count == 0


def test_overloaded_is_an_openai_shaped_503_with_retry_after() -> None:
    from ccapi_client.status_table import http_status
    from http_facade.errors import from_status

    assert http_status(grpc.StatusCode.UNAVAILABLE, "overloaded") == 503
    error = from_status(grpc.StatusCode.UNAVAILABLE, "at capacity", "overloaded", retry_after=3)
    assert error.status == 503 and error.headers()["Retry-After"] == "3"
    assert error.body()["error"] == {
        "message": "at capacity",
        "type": "server_error",
        "param": None,
        "code": "overloaded",
    }
