"""Running: one turn over one Claude Code process.

The prompt goes in through the SDK's streaming input; the SDK's messages come
out as `claudecode.v1` events (`agent.translate`), with the workspace's file
changes after every tool result. A stop sequence ends the answer by
interrupting the model (the session stays usable); so does a cancel request
from another RPC.

The runner talks to the process only through `TurnProcess`, the few calls a
turn needs, so a test can run it over a fake process fed recorded SDK
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Protocol

from claude_agent_sdk import StreamEvent
from claude_agent_sdk.types import Message as SdkMessage

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.agent.client_tools import ClientToolServer, ToolCallStream
from core_service.agent.options import ProcessShape
from core_service.agent.translate import TurnAccumulator, TurnTranslator
from core_service.turns.turn_spans import TurnSpans, tracer

log = logging.getLogger("ccapi.sessions")

INTERRUPT_TIMEOUT_SECONDS = 2.0
# Once the model's message named its client tool calls, how long Claude Code
# may take to bring every one of them to our MCP handler.
CALLS_ARRIVE_SECONDS = 30.0


class TurnClient(Protocol):
    """The calls a turn makes on a connected Claude Code (ClaudeSDKClient has them)."""

    async def query(self, prompt: AsyncIterable[dict[str, Any]]) -> None: ...

    def receive_response(self) -> AsyncIterator[SdkMessage]: ...

    async def interrupt(self) -> None: ...

    async def set_model(self, model: str | None = None) -> None: ...


class TurnProcess(Protocol):
    """A Claude Code process as a turn sees it (AgentProcess is one)."""

    shape: ProcessShape
    # Claude Code's running cost total as of the process's last turn (or the
    # session's when it resumed one); the next turn's cost is counted from it.
    reported_cost_usd: float

    @property
    def client(self) -> TurnClient: ...

    @property
    def stderr_tail(self) -> Iterable[str]: ...


def client_tools_of(process: TurnProcess) -> ClientToolServer | None:
    """The process's server of client tools (AgentProcess.client_tools); a
    process without the attribute offers none."""
    server = getattr(process, "client_tools", None)
    return server if isinstance(server, ClientToolServer) else None


class FileSteps(Protocol):
    """The workspace's changes, read off the disk (file_changes.FileTracker), on
    an executor of their own: a turn's scan must not hold up database calls."""

    async def abegin(self) -> None: ...

    async def astep(self) -> list[ev.FileChange]: ...

    async def atotal(self) -> list[ev.FileChange]: ...


class CancelFlag(Protocol):
    """Set from outside (CancelTurn, shutdown) to end the turn early."""

    cancel_requested: bool


async def interrupt(process: TurnProcess) -> None:
    """Asks Claude Code to stop the current turn; never raises, never hangs."""
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(process.client.interrupt(), INTERRUPT_TIMEOUT_SECONDS)


async def prompt_stream(
    parts: list[cpb.ContentPart], session_id: str
) -> AsyncIterator[dict[str, Any]]:
    """The SDK's streaming input: one user message."""
    yield {
        "type": "user",
        "message": {"role": "user", "content": conversation.sdk_content(parts)},
        "parent_tool_use_id": None,
        "session_id": session_id,
    }


class TurnRunner:
    """Runs one turn; after `run` ended, its attributes say what was observed.

    With client tools, a turn may stop before Claude Code's turn ends: when
    the model's message called client tools and every call waits in our MCP
    handler, `run` returns with `stopped_for` set and the SDK's message stream
    still open (`messages`). The next RunTurn hands that stream to a new
    runner, whose `resume` delivers the results and reads on.
    """

    def __init__(
        self,
        process: TurnProcess,
        session_id: str,
        files: FileSteps,
        cancel: CancelFlag,
        stops: list[str],
        excerpt_chars: int,
        messages: AsyncIterator[SdkMessage] | None = None,
        guard: Callable[[AsyncIterator[SdkMessage]], AsyncIterator[SdkMessage]] | None = None,
        on_message: Callable[[SdkMessage], None] | None = None,
        *,
        structured: bool = False,
    ) -> None:
        # `guard` wraps Claude Code's message stream (the model-silence
        # watchdog); `on_message` sees every message (progress for recovery).
        self._guard = guard
        self._on_message = on_message
        self._process = process
        self._session_id = session_id
        self._files = files
        self._cancel = cancel
        server = client_tools_of(process)
        names = server.tool_set.names if server is not None else frozenset()
        self._translator = TurnTranslator(
            stops,
            excerpt_chars,
            names,
            structured=structured,
            reported_before_usd=process.reported_cost_usd,
        )
        self._tool_calls = (
            ToolCallStream(server.tool_set.kinds, server.tool_set.namespaces)
            if server is not None
            else None
        )
        # The SDK's messages of the Claude Code turn (open across RunTurns while it waits).
        self.messages = messages
        # The client tool calls this part of the turn stopped for (empty: it ran to its end).
        self.stopped_for: list[cpb.ClientToolCall] = []
        self.first_text_at: float | None = None
        # Every file the turn changed, net (set once the turn's messages ended).
        self.changed: list[ev.FileChange] = []

    @property
    def acc(self) -> TurnAccumulator:
        return self._translator.acc

    @property
    def stop_hit(self) -> bool:
        return self._translator.stop_hit

    @property
    def cancelled(self) -> bool:
        return self._cancel.cancel_requested

    def exit_detail(self) -> str:
        tail = " ".join(self._process.stderr_tail)[-300:]
        return "Claude Code ended the turn without a result" + (f": {tail}" if tail else "")

    async def run(
        self, content: list[cpb.ContentPart], model: str
    ) -> AsyncIterator[pb.RunTurnResponse]:
        process = self._process
        if process.shape.model != model:
            # The model is the one thing a running process can switch.
            await process.client.set_model(model)
            process.shape = dataclasses.replace(process.shape, model=model)
        await self._files.abegin()
        log.debug(
            "claude prompt", extra={"session_id": self._session_id, "prompt": repr(content)[:4000]}
        )
        await process.client.query(prompt_stream(content, self._session_id))
        messages: AsyncIterator[SdkMessage] = process.client.receive_response()
        if self._guard is not None:
            messages = self._guard(messages)
        self.messages = aiter(messages)
        async for event in self._read():
            yield event

    async def resume(
        self, deliver: Callable[[], None], earlier_calls: Sequence[str]
    ) -> AsyncIterator[pb.RunTurnResponse]:
        """Continues a Claude Code turn that waits for client tool results:
        `deliver` hands them to the waiting calls (`earlier_calls`, their ids)."""
        assert self.messages is not None, "only a turn that stopped for client tools resumes"
        self._translator.known_client_calls(earlier_calls)
        await self._files.abegin()
        deliver()
        async for event in self._read():
            yield event

    async def _read(self) -> AsyncIterator[pb.RunTurnResponse]:
        process = self._process
        assert self.messages is not None
        spans = TurnSpans()  # first token, each tool use (traces)
        try:
            async for message in self.messages:
                if self._on_message is not None:
                    self._on_message(message)
                log.debug(
                    "claude message",
                    extra={"session_id": self._session_id, "sdk_message": repr(message)[:4000]},
                )
                for event in self._translator.feed(message):
                    kind = event.WhichOneof("event")
                    if kind == "text_delta" and self.first_text_at is None:
                        self.first_text_at = time.monotonic()
                    spans.observe(event)
                    yield event
                    if kind == "tool_result":
                        # Changes are read off the workspace, so Bash edits count too.
                        for change in await self._scan():
                            yield pb.RunTurnResponse(file_change=change)
                if self.stop_hit and not self._cancel.cancel_requested:
                    # A stop sequence ended the answer: stop the model, keep the session.
                    self._cancel.cancel_requested = True
                    await interrupt(process)
                if isinstance(message, StreamEvent) and message.parent_tool_use_id is None:
                    for event in self._client_tool_events(message.event):
                        yield event
                    if await self._all_calls_wait():
                        for event in self._translator.flush():
                            yield event
                        for change in await self._scan():
                            yield pb.RunTurnResponse(file_change=change)
                        self.changed = await self._files.atotal()
                        return
        finally:
            spans.close()  # also when the turn is abandoned mid-stream
            if self.acc.reported_total_usd is not None:
                process.reported_cost_usd = self.acc.reported_total_usd
        for event in self._translator.flush():
            yield event
        for change in await self._scan():
            yield pb.RunTurnResponse(file_change=change)
        self.changed = await self._files.atotal()

    async def _scan(self) -> list[ev.FileChange]:
        with tracer.start_as_current_span("turn.file_scan"):
            return await self._files.astep()

    def _client_tool_events(self, raw: dict[str, Any]) -> list[pb.RunTurnResponse]:
        if self._tool_calls is None:
            return []
        return self._tool_calls.feed(raw)

    async def _all_calls_wait(self) -> bool:
        """True once the model's message is complete and all its client calls wait."""
        calls, server = self._tool_calls, client_tools_of(self._process)
        if calls is None or server is None or not calls.all_known or self.stopped_for:
            return False
        try:
            await server.wait_for([c.call_id for c in calls.calls], CALLS_ARRIVE_SECONDS)
        except TimeoutError:
            # Some call never reached us (refused before it ran): read on, the
            # model gets Claude Code's own result for it.
            log.warning(
                "client tool calls did not all arrive", extra={"session_id": self._session_id}
            )
            calls.all_known = False
            return False
        self.stopped_for = list(calls.calls)
        return True

    @property
    def client_calls(self) -> list[cpb.ClientToolCall]:
        """Client tool calls the model made in this part of the turn, complete."""
        return list(self._tool_calls.calls) if self._tool_calls is not None else []
