"""Ends a turn whose Claude Code stream goes silent.

Claude Code bounds a model request until its response starts (API_TIMEOUT_MS),
but not a stream that stops sending after it started: the turn would hang
until the client gave up. While the main agent is between `message_start`
and `message_stop`, a silence of API_TIMEOUT_MS ends the turn. Between model
answers (tools running, a model request starting) a silence is bounded too,
by a longer limit: API_TIMEOUT_MS plus the longest a tool may legitimately
run (a built-in command, or a client tool waiting for its result).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from claude_agent_sdk import StreamEvent

from core_service.config import CoreConfig
from core_service.errors import Unavailable

T = TypeVar("T")

# Claude Code's own default for API_TIMEOUT_MS.
DEFAULT_IDLE_SECONDS = 600.0
# The longest Claude Code lets a built-in command run (the Bash tool's maximum).
TOOL_RUN_SECONDS = 600.0
# Processes being ended after a stall (a reference keeps each task alive).
_ENDING: set[asyncio.Task[None]] = set()


def idle_seconds(config: CoreConfig) -> float:
    raw = config.claude_env.get("API_TIMEOUT_MS", "")
    try:
        value = float(raw) / 1000
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return value if value > 0 else DEFAULT_IDLE_SECONDS


def quiet_seconds(config: CoreConfig) -> float:
    """The bound on a silence between model answers."""
    longest_tool = max(TOOL_RUN_SECONDS, float(config.client_tool_timeout_seconds))
    return idle_seconds(config) + longest_tool


async def bounded_model_stream(
    messages: AsyncIterator[T],
    idle: float,
    on_stall: Callable[[], Awaitable[None]],
    quiet: float | None = None,
) -> AsyncIterator[T]:
    """`messages`, failing with UNAVAILABLE when a started model stream is
    silent for `idle` seconds, or the stream between model answers for
    `quiet` seconds (default: `idle` plus TOOL_RUN_SECONDS). `on_stall`
    (ending the process, which takes a few seconds) runs beside the failure,
    which the client gets at once."""
    iterator = aiter(messages)
    between = quiet if quiet is not None else idle + TOOL_RUN_SECONDS
    streaming = False
    while True:
        # The wait for the next message is never cancelled, not even when the
        # caller is: cancelling it inside the SDK leaves a client that no
        # longer disconnects.
        pending: asyncio.Future[T] = asyncio.ensure_future(anext(iterator))
        limit = idle if streaming else between
        try:
            done, _ = await asyncio.wait({pending}, timeout=limit)
        except asyncio.CancelledError:
            pending.add_done_callback(_forget)
            raise
        if not done:
            pending.add_done_callback(_forget)
            _in_background(on_stall)
            if streaming:
                raise Unavailable(
                    f"The model stopped sending in the middle of its answer for {limit:g} s "
                    "(API_TIMEOUT_MS); the turn was ended.",
                    reason="model_unavailable",
                )
            raise Unavailable(
                f"Claude Code sent nothing for {limit:g} s between model answers; "
                "the turn was ended.",
                reason="agent_unavailable",
            )
        try:
            message = pending.result()
        except StopAsyncIteration:
            return
        if isinstance(message, StreamEvent) and message.parent_tool_use_id is None:
            kind = message.event.get("type")
            if kind == "message_start":
                streaming = True
            elif kind == "message_stop":
                streaming = False
        yield message


def _in_background(action: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.ensure_future(_quietly(action))
    _ENDING.add(task)
    task.add_done_callback(_ENDING.discard)


async def _quietly(action: Callable[[], Awaitable[None]]) -> None:
    try:
        await action()
    except Exception:  # AgentProcess.close never raises; others might
        return


def _forget(future: asyncio.Future[Any]) -> None:
    """Collects the outcome of a wait nobody awaits any more."""
    if not future.cancelled():
        future.exception()
