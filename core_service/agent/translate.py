"""Where a Claude Code turn's messages become claudecode.v1 events.

The SDK yields raw Anthropic stream events (token deltas), whole assistant
messages (tool calls), user messages (tool results) and a final result; this
module turns each into the events our proto defines, accumulating the turn's
text, thinking, tools and usage on the way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk.types import Message as SdkMessage

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from core_service.agent.client_tools import tool_name_from_cli
from core_service.agent.model_errors import from_api_status, from_assistant_error
from core_service.agent.structured_output import structured_answer
from core_service.errors import ModelError, ServiceError


def tool_summary(name: str, tool_input: dict[str, Any]) -> str:
    """One line a person understands: "Write fib.py", "Bash: pytest -q"."""
    for key in ("file_path", "notebook_path"):
        if isinstance(tool_input.get(key), str):
            return f"{name} {os.path.basename(tool_input[key])}"
    if name == "Bash" and isinstance(tool_input.get("command"), str):
        command = (
            tool_input["command"].strip().splitlines()[0] if tool_input["command"].strip() else ""
        )
        return f"Bash: {command[:120]}"
    for key in ("pattern", "path", "url", "query", "description"):
        if isinstance(tool_input.get(key), str):
            return f"{name} {tool_input[key][:120]}"
    return name


def tool_result_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
    return "\n".join(p for p in parts if p)


class StopScanner:
    """Holds back just enough text to find stop sequences split across deltas."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._keep = max((len(s) for s in self._stops), default=1) - 1
        self._pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """Returns the text that is safe to emit now."""
        if not self._stops:
            return text
        if self.hit:
            return ""
        self._pending += text
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            out, self._pending = self._pending[:cut], ""
            return out
        safe = len(self._pending) - self._keep
        if safe <= 0:
            return ""
        out, self._pending = self._pending[:safe], self._pending[safe:]
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.hit else self._pending), ""
        return out


@dataclass
class TurnAccumulator:
    """What a turn produced so far."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_uses: list[ev.ToolUse] = field(default_factory=list)
    tool_results: list[ev.ToolResult] = field(default_factory=list)
    usage: ev.Usage = field(default_factory=ev.Usage)
    num_turns: int = 0
    finish_reason: ev.FinishReason.ValueType = ev.FINISH_REASON_STOP
    error: ServiceError | None = None
    result: ResultMessage | None = None
    # Claude Code's uuid of the latest assistant message (to fork at this turn).
    last_assistant_uuid: str | None = None
    # Everything above in the order it happened.
    items: list[pb.TurnItem] = field(default_factory=list)
    # With an output format: the structured answer as JSON text (also the text).
    structured_json: str = ""
    # Claude Code compacted the conversation (/compact): the tokens it summarised.
    # From then on the resume point is the last message after the summary.
    compacted_tokens: int | None = None

    def add_text(self, text: str) -> None:
        self.text.append(text)
        if self.items and self.items[-1].WhichOneof("item") == "text":
            self.items[-1].text += text
        else:
            self.items.append(pb.TurnItem(text=text))

    def add_reasoning(self, text: str) -> None:
        self.reasoning.append(text)
        if self.items and self.items[-1].WhichOneof("item") == "reasoning":
            self.items[-1].reasoning += text
        else:
            self.items.append(pb.TurnItem(reasoning=text))


class TurnTranslator:
    """`client_tools`: the request's own tool names; their calls and results are
    the client's (ClientToolCall events, from `client_tools.ToolCallStream`),
    never ToolUse / ToolResult events. `structured`: the answer is Claude
    Code's structured output, and the model's own text is reasoning."""

    def __init__(
        self,
        stops: list[str],
        excerpt_chars: int,
        client_tools: Collection[str] = (),
        *,
        structured: bool = False,
    ) -> None:
        self.acc = TurnAccumulator()
        self._client_tools = frozenset(client_tools)
        self._client_call_ids: set[str] = set()
        self._stop = StopScanner(stops)
        self._excerpt_chars = excerpt_chars
        self._in_text_block = False
        # With an output format the model's text is commentary and the answer
        # is the document (agent.structured_output says why).
        self._structured = structured

    @property
    def stop_hit(self) -> bool:
        return self._stop.hit

    def known_client_calls(self, call_ids: Collection[str]) -> None:
        """Calls of client tools made before this translator began (a turn continued)."""
        self._client_call_ids.update(call_ids)

    def feed(self, message: SdkMessage) -> list[pb.RunTurnResponse]:
        if isinstance(message, StreamEvent):
            return self._on_stream_event(message)
        if isinstance(message, AssistantMessage):
            return self._on_assistant(message)
        if isinstance(message, UserMessage):
            return self._on_user(message)
        if isinstance(message, ResultMessage):
            return self._on_result(message)
        if isinstance(message, SystemMessage) and message.subtype == "compact_boundary":
            metadata = message.data.get("compact_metadata") or {}
            self.acc.compacted_tokens = int(metadata.get("pre_tokens") or 0)
        return []

    def flush(self) -> list[pb.RunTurnResponse]:
        return self._text(self._stop.flush())

    def _text(self, text: str) -> list[pb.RunTurnResponse]:
        if not text:
            return []
        self.acc.add_text(text)
        return [pb.RunTurnResponse(text_delta=ev.TextDelta(text=text))]

    def _on_stream_event(self, message: StreamEvent) -> list[pb.RunTurnResponse]:
        if message.parent_tool_use_id is not None:
            return []  # a subagent's stream; its outcome arrives as a tool result
        event = message.event
        kind = event.get("type")
        if kind == "content_block_start":
            block = event.get("content_block", {})
            if block.get("type") == "text":
                out: list[pb.RunTurnResponse] = []
                # Separate the text of successive model calls (before/after tools).
                if self.acc.text and not self._in_text_block:
                    out = self._text(self._stop.feed("\n\n"))
                self._in_text_block = True
                return out
            self._in_text_block = False
            return []
        if kind != "content_block_delta":
            return []
        delta = event.get("delta", {})
        if delta.get("type") == "text_delta":
            if self._structured:
                return self._reasoning(delta.get("text", ""))
            return self._text(self._stop.feed(delta.get("text", "")))
        if delta.get("type") == "thinking_delta":
            return self._reasoning(delta.get("thinking", ""))
        return []

    def _reasoning(self, text: str) -> list[pb.RunTurnResponse]:
        if not text:
            return []
        self.acc.add_reasoning(text)
        return [pb.RunTurnResponse(reasoning_delta=ev.ReasoningDelta(text=text))]

    def _on_assistant(self, message: AssistantMessage) -> list[pb.RunTurnResponse]:
        if message.parent_tool_use_id is not None:
            return []
        if message.uuid:
            self.acc.last_assistant_uuid = message.uuid
        kind: str | None = message.error  # the CLI sends kinds the SDK's Literal lacks
        if kind == "max_output_tokens":
            # Claude Code gave up asking the model to go on after cut answers:
            # the output limit ended the turn (incomplete, not failed).
            self.acc.finish_reason = ev.FINISH_REASON_LENGTH
        elif message.error and self.acc.error is None:
            detail = " ".join(b.text for b in message.content if isinstance(b, TextBlock))[:300]
            self.acc.error = from_assistant_error(message.error, detail)
        out: list[pb.RunTurnResponse] = []
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                if tool_name_from_cli(block.name, self._client_tools) in self._client_tools:
                    self._client_call_ids.add(block.id)
                    continue
                use = ev.ToolUse(
                    id=block.id,
                    name=block.name,
                    input_json=json.dumps(block.input, ensure_ascii=False),
                    summary=tool_summary(block.name, block.input),
                )
                self.acc.tool_uses.append(use)
                self.acc.items.append(pb.TurnItem(tool_use=use))
                out.append(pb.RunTurnResponse(tool_use=use))
        return out

    def _on_user(self, message: UserMessage) -> list[pb.RunTurnResponse]:
        if self.acc.compacted_tokens is not None and message.uuid:
            # A fork at this turn must keep the summary (it has no assistant message).
            self.acc.last_assistant_uuid = message.uuid
        if message.parent_tool_use_id is not None or isinstance(message.content, str):
            return []
        out: list[pb.RunTurnResponse] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                if block.tool_use_id in self._client_call_ids:
                    continue
                text = tool_result_text(block.content)
                result = ev.ToolResult(
                    tool_use_id=block.tool_use_id,
                    is_error=bool(block.is_error),
                    output_excerpt=text[: self._excerpt_chars],
                    truncated=len(text) > self._excerpt_chars,
                )
                self.acc.tool_results.append(result)
                self.acc.items.append(pb.TurnItem(tool_result=result))
                out.append(pb.RunTurnResponse(tool_result=result))
        return out

    def _on_result(self, message: ResultMessage) -> list[pb.RunTurnResponse]:
        self.acc.result = message
        self.acc.num_turns = message.num_turns
        usage = message.usage or {}
        self.acc.usage = ev.Usage(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
            cache_creation_input_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            cost_usd=float(message.total_cost_usd or 0.0),
        )
        if self.acc.compacted_tokens and not self.acc.usage.input_tokens:
            # The result of a /compact reports no tokens; the model read this many.
            self.acc.usage.input_tokens = self.acc.compacted_tokens
        if message.subtype == "error_max_turns":
            self.acc.finish_reason = ev.FINISH_REASON_MAX_TURNS
        elif message.subtype == "error_max_budget_usd":
            self.acc.finish_reason = ev.FINISH_REASON_BUDGET
        elif message.terminal_reason in ("aborted_streaming", "aborted_tools"):
            self.acc.finish_reason = ev.FINISH_REASON_CANCELLED
        elif message.stop_reason == "max_tokens":
            self.acc.finish_reason = ev.FINISH_REASON_LENGTH
        # A turn the output limit cut is incomplete, not failed: Claude Code
        # reports it as an API error after it stopped asking the model to go on.
        cut = self.acc.finish_reason == ev.FINISH_REASON_LENGTH
        if (
            message.is_error
            and message.subtype in ("success", "error_during_execution")
            and not cut
        ):
            # The HTTP status is the most precise account; an assistant-message
            # error kind (e.g. "server_error" for a 529) is the fallback.
            if message.api_error_status is not None or self.acc.error is None:
                detail = "; ".join(message.errors or [])[:300] or (message.result or "")[:300]
                self.acc.error = from_api_status(message.api_error_status, detail)
        out: list[pb.RunTurnResponse] = []
        if self._structured:
            out = self._structured_answer(message)
        return [*out, pb.RunTurnResponse(usage=self.acc.usage)]

    def _structured_answer(self, message: ResultMessage) -> list[pb.RunTurnResponse]:
        try:
            document = structured_answer(message)
        except ModelError as error:
            self.acc.error = self.acc.error or error
            return []
        if document is None:
            return []
        self.acc.structured_json = document
        return self._text(document)
