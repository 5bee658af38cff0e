"""The model watchdog: a silent Claude Code stream ends the turn, inside a
model answer after API_TIMEOUT_MS, between answers after a longer bound; the
pending read is never cancelled under the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from claude_agent_sdk.types import TextBlock

from core_service.errors import Unavailable
from core_service.model_watchdog import bounded_model_stream
from tests.unit.recorded import assistant, block_start


class Silent:
    """Sends `before`, then nothing; records whether its read was cancelled."""

    def __init__(self, *before: object) -> None:
        self._before = list(before)
        self.read_cancelled = False
        self.reading = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[object]:
        return self

    async def __anext__(self) -> object:
        if self._before:
            return self._before.pop(0)
        self.reading.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.read_cancelled = True
            raise
        raise StopAsyncIteration


async def test_a_silence_between_model_answers_is_bounded_too() -> None:
    stalls: list[str] = []

    async def on_stall() -> None:
        stalls.append("ended")

    source = Silent(assistant(TextBlock("done with the tool"), uuid="a-1"))
    seen: list[object] = []
    with pytest.raises(Unavailable) as raised:
        async with asyncio.timeout(5):
            async for message in bounded_model_stream(source, 10.0, on_stall, quiet=0.1):
                seen.append(message)
    assert len(seen) == 1 and "between model answers" in raised.value.message
    await asyncio.sleep(0)
    assert stalls == ["ended"]
    assert not source.read_cancelled  # left to finish (or fail) in the SDK


async def test_a_caller_that_goes_away_does_not_cancel_the_read_under_the_sdk() -> None:
    source = Silent(block_start())

    async def consume() -> None:
        async for _ in bounded_model_stream(source, 10.0, _nothing, quiet=10.0):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(source.reading.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not source.read_cancelled


async def _nothing() -> None:
    return None
