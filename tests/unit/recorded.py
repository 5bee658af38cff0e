"""SDK messages as Claude Code sends them (real `claude_agent_sdk` types), and
a fake of our own `TurnProcess` interface that replays them."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk.types import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk.types import Message as SdkMessage

from core_service.agent.options import ProcessShape

SESSION = "3f1c2a9e-0000-4000-8000-000000000001"


def block_start(kind: str = "text") -> StreamEvent:
    return StreamEvent(
        uuid="e-start",
        session_id=SESSION,
        event={"type": "content_block_start", "index": 0, "content_block": {"type": kind}},
    )


def _delta(delta: dict[str, str]) -> StreamEvent:
    return StreamEvent(
        uuid="e-delta",
        session_id=SESSION,
        event={"type": "content_block_delta", "index": 0, "delta": delta},
    )


def text_delta(text: str) -> StreamEvent:
    return _delta({"type": "text_delta", "text": text})


def thinking_delta(text: str) -> StreamEvent:
    return _delta({"type": "thinking_delta", "thinking": text})


def assistant(*blocks: TextBlock | ToolUseBlock, uuid: str = "a-1") -> AssistantMessage:
    return AssistantMessage(content=list(blocks), model="claude-sonnet-4-5", uuid=uuid)


def tool_use(tool_id: str, name: str, tool_input: dict[str, Any]) -> AssistantMessage:
    return assistant(ToolUseBlock(id=tool_id, name=name, input=tool_input), uuid=f"a-{tool_id}")


def tool_result(tool_id: str, text: str, is_error: bool = False) -> UserMessage:
    return UserMessage(
        content=[ToolResultBlock(tool_use_id=tool_id, content=text, is_error=is_error)]
    )


def result(
    *,
    subtype: str = "success",
    is_error: bool = False,
    stop_reason: str | None = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 5,
    cost: float = 0.001,
    api_error_status: int | None = None,
    terminal_reason: str | None = None,
    text: str = "",
) -> ResultMessage:
    return ResultMessage(
        subtype=subtype,
        duration_ms=10,
        duration_api_ms=8,
        is_error=is_error,
        num_turns=1,
        session_id=SESSION,
        stop_reason=stop_reason,
        total_cost_usd=cost,
        usage={"input_tokens": input_tokens, "output_tokens": output_tokens},
        result=text,
        api_error_status=api_error_status,
        terminal_reason=terminal_reason,
    )


# A step of a script: a message Claude Code sends, or something that happens
# meanwhile (a tool writing a file).
Step = SdkMessage | Callable[[], None]


@dataclass
class FakeClient:
    script: list[Step]
    prompts: list[dict[str, Any]] = field(default_factory=list)
    interrupts: int = 0
    models: list[str | None] = field(default_factory=list)
    # Messages still sent after an interrupt (Claude Code finishes with a result).
    after_interrupt: list[SdkMessage] = field(default_factory=list)

    async def query(self, prompt: AsyncIterable[dict[str, Any]]) -> None:
        self.prompts.extend([message async for message in prompt])

    async def receive_response(self) -> AsyncIterator[SdkMessage]:
        for step in self.script:
            if self.interrupts:
                break
            if isinstance(step, (AssistantMessage, ResultMessage, StreamEvent, UserMessage)):
                yield step
            elif callable(step):
                step()
        if self.interrupts:
            for message in self.after_interrupt:
                yield message

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def set_model(self, model: str | None = None) -> None:
        self.models.append(model)


@dataclass
class FakeProcess:
    client: FakeClient
    shape: ProcessShape = field(default_factory=lambda: ProcessShape(model="claude-sonnet-4-5"))
    stderr_tail: list[str] = field(default_factory=list)
    reported_cost_usd: float = 0.0


@dataclass
class Flag:
    cancel_requested: bool = False
