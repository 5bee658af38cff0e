"""The registry: one turn at a time per session, and cancel requests that
reach a running turn."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from core_service.agent.pool import ProcessPool
from core_service.agent.process import ProcessFactory
from core_service.errors import Busy
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
