"""OpenAI Chat Completions <-> claudecode.v1 conversion, both directions.

Pure functions and one small accumulator; no I/O.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from http_facade import file_summary
from http_facade.attachments import attachment_part
from http_facade.errors import invalid_request, unsupported
from http_facade.inputs import ROLES, image_from_url, reasoning_effort, validate_body
from http_facade.structured_output import chat_output_format
from http_facade.tool_calls import ToolRequest, builtin_choice, chat_tools, with_tools
from http_facade.turns import TurnRecord

from .protocol import (
    UNSUPPORTED,
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FilePart,
    FunctionMessage,
    ImagePart,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

ENDPOINT = "/v1/chat/completions"

# --- request ---------------------------------------------------------------------------


def _check_messages(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        if msg.get("audio") not in (None, []):
            raise unsupported(f"messages[{i}].audio")
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in ("input_audio", "audio"):
                    raise unsupported(f"messages[{i}].content[{j}].type", f"'{kind}' parts")


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request and its client tools."""

    body: ChatCompletionRequest
    tools: ToolRequest

    @property
    def legacy(self) -> bool:
        """The request used the deprecated `functions` (answers use `function_call`)."""
        return bool(self.body.functions)


def validate_request(body: Any) -> ChatRequest:
    """The request body as a model, or an ApiError (400) naming the param."""
    model = validate_body(body, ChatCompletionRequest, UNSUPPORTED, _check_messages)
    tools = chat_tools(body)
    if model.web_search_options is not None and "web_search" not in tools.hosted:
        # Chat's spelling of the hosted web_search tool.
        tools = dataclasses.replace(tools, hosted=(*tools.hosted, "web_search"))
    return ChatRequest(model, tools)


AnyMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage


def _tool_calls(msg: AssistantMessage, i: int) -> list[content_pb2.ContentPart]:
    """The calls an earlier answer made, as the client resends them."""
    parts: list[content_pb2.ContentPart] = []
    for j, call in enumerate(msg.tool_calls or []):
        if call.type == "custom":
            if call.custom is None:
                raise invalid_request(
                    "Missing required parameter: 'custom'.",
                    f"messages[{i}].tool_calls[{j}].custom",
                    "missing_required_parameter",
                )
            out = content_pb2.ClientToolCall(
                call_id=call.id,
                name=call.custom.name,
                kind=content_pb2.CLIENT_TOOL_KIND_CUSTOM,
                input=call.custom.input,
            )
        else:
            if call.function is None:
                raise invalid_request(
                    "Missing required parameter: 'function'.",
                    f"messages[{i}].tool_calls[{j}].function",
                    "missing_required_parameter",
                )
            out = content_pb2.ClientToolCall(
                call_id=call.id,
                name=call.function.name,
                kind=content_pb2.CLIENT_TOOL_KIND_FUNCTION,
                arguments_json=call.function.arguments,
            )
        parts.append(content_pb2.ContentPart(tool_call=out))
    if msg.function_call is not None:
        legacy = content_pb2.ClientToolCall(
            name=msg.function_call.name,
            kind=content_pb2.CLIENT_TOOL_KIND_FUNCTION,
            arguments_json=msg.function_call.arguments,
        )
        parts.append(content_pb2.ContentPart(tool_call=legacy))
    return parts


def _message(m: AnyMessage | ToolMessage | FunctionMessage, i: int) -> content_pb2.Message:
    if isinstance(m, ToolMessage | FunctionMessage):
        content = m.content or ""
        text = content if isinstance(content, str) else "".join(p.text for p in content)
        call_id = m.tool_call_id if isinstance(m, ToolMessage) else ""
        output = content_pb2.ClientToolOutput(call_id=call_id, output=text)
        return content_pb2.Message(
            role=content_pb2.ROLE_TOOL,
            content=[content_pb2.ContentPart(tool_output=output)],
            name=m.name if isinstance(m, FunctionMessage) else "",
        )
    parts = _parts(m, i)
    if isinstance(m, AssistantMessage):
        parts += _tool_calls(m, i)
    return content_pb2.Message(role=ROLES[m.role], content=parts, name=m.name or "")


def _parts(msg: AnyMessage, i: int) -> list[content_pb2.ContentPart]:
    content = msg.content
    # Our own earlier answers come back with the file summary we appended; the
    # core knows them without it (it matches resent history exactly).
    ours = file_summary.remove if isinstance(msg, AssistantMessage) else _same
    if content is None:
        text = msg.refusal if isinstance(msg, AssistantMessage) and msg.refusal else ""
        return [content_pb2.ContentPart(text=text)] if text else []
    if isinstance(content, str):
        return [content_pb2.ContentPart(text=ours(content))]
    parts: list[content_pb2.ContentPart] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append(content_pb2.ContentPart(text=ours(part.text)))
        elif isinstance(part, RefusalPart):
            parts.append(content_pb2.ContentPart(text=part.refusal))
        elif isinstance(part, ImagePart):
            img = image_from_url(part.image_url.url, f"messages[{i}].content[{j}].image_url.url")
            parts.append(content_pb2.ContentPart(image=img))
        elif isinstance(part, FilePart):
            f = part.file
            parts.append(
                attachment_part(
                    file_data=f.file_data,
                    file_id=f.file_id,
                    filename=f.filename,
                    param=f"messages[{i}].content[{j}].file",
                )
            )
    return parts


def _same(text: str) -> str:
    return text


def session_id_of(req: ChatCompletionRequest, header: str | None) -> str:
    """X-Session-Id header or the body's session_id (they must agree)."""
    header = (header or "").strip()
    body = (req.session_id or "").strip()
    if header and body and header != body:
        raise invalid_request("X-Session-Id and session_id disagree.", "session_id")
    return header or body


def builtin_tools_of(
    req: ChatCompletionRequest, header: str | None
) -> content_pb2.BuiltinTools | None:
    """`claude_code.builtin_tools` in the body, or the X-Claude-Code-Builtin-Tools header."""
    wanted = req.claude_code.builtin_tools if req.claude_code is not None else None
    return builtin_choice(wanted, header)


def to_run_turn_request(
    chat: ChatRequest,
    *,
    session_id: str,
    request_id: str,
    builtin: content_pb2.BuiltinTools | None = None,
) -> agent_pb2.RunTurnRequest:
    """The RunTurnRequest for a validated chat request."""
    req = chat.body
    messages = [_message(m, i) for i, m in enumerate(req.messages)]
    max_tokens = req.max_completion_tokens or req.max_tokens or 0
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    options = agent_pb2.TurnOptions(
        max_output_tokens=max_tokens,
        reasoning_effort=reasoning_effort(req.reasoning_effort),
        stop=[s for s in stop if s],
        user=req.user or "",
    )
    run = agent_pb2.RunTurnRequest(
        model=req.model,
        messages=messages,
        session_id=session_id,
        options=options,
        metadata=dict(req.metadata or {}),
        origin=agent_pb2.RequestOrigin(
            endpoint=ENDPOINT, request_id=request_id, client_stream=bool(req.stream)
        ),
        output_format=chat_output_format(
            req.response_format, [m.model_dump() for m in req.messages]
        ),
    )
    return with_tools(run, chat.tools, builtin)


# --- response --------------------------------------------------------------------------

_FINISH = {
    events_pb2.FINISH_REASON_UNSPECIFIED: "stop",
    events_pb2.FINISH_REASON_STOP: "stop",
    events_pb2.FINISH_REASON_STOP_SEQUENCE: "stop",
    events_pb2.FINISH_REASON_LENGTH: "length",
    events_pb2.FINISH_REASON_MAX_TURNS: "length",
    events_pb2.FINISH_REASON_BUDGET: "length",
    events_pb2.FINISH_REASON_CANCELLED: "stop",
    events_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
}


def usage_dict(u: events_pb2.Usage) -> dict[str, Any]:
    """OpenAI usage from Claude Code's own numbers (never estimated)."""
    prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class TurnState(TurnRecord):
    """Collects one turn's events; also knows how to render chunks for them."""

    include_usage: bool = False
    file_summary: bool = False
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_summaries: dict[str, str] = field(default_factory=dict)
    # Legacy `functions`: calls are rendered as `function_call`.
    legacy_functions: bool = False
    # Stream index -> kind of the client tool call being written.
    call_kinds: dict[int, int] = field(default_factory=dict)

    def start(self, ev: events_pb2.TurnStarted, requested_model: str) -> None:
        self.begin(ev, requested_model)
        self.id = f"chatcmpl-{ev.turn_id}"
        if ev.created_at:
            self.created = int(ev.created_at)

    # Each returns the delta to stream (empty dict: nothing to send).
    def on_event(self, ev: agent_pb2.RunTurnResponse) -> dict[str, Any]:
        kind = ev.WhichOneof("event")
        if kind == "tool_call_started":
            return self._call_started(ev.tool_call_started)
        if kind == "tool_call_delta":
            return self._call_delta(ev.tool_call_delta)
        if kind == "text_delta":
            self.text.append(ev.text_delta.text)
            return {"content": ev.text_delta.text} if ev.text_delta.text else {}
        if kind == "reasoning_delta":
            return self._reason(ev.reasoning_delta.text)
        if kind == "tool_use":
            tu = ev.tool_use
            summary = _one_line(tu.summary or tu.name or "tool")
            self.tool_summaries[tu.id] = summary
            return self._reason(f"\n▸ {summary}\n")
        if kind == "tool_result":
            tr = ev.tool_result
            summary = self.tool_summaries.get(tr.tool_use_id, "tool")
            if tr.is_error:
                detail = _one_line(tr.output_excerpt, 160)
                return self._reason(f"✗ {summary}" + (f": {detail}" if detail else "") + "\n")
            return self._reason(f"✓ {summary}\n")
        self.record(ev)
        return {}

    def _call_started(self, started: events_pb2.ClientToolCallStarted) -> dict[str, Any]:
        self.call_kinds[started.index] = started.kind
        if self.legacy_functions:
            return {"function_call": {"name": started.name, "arguments": ""}}
        if started.kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM:
            body: dict[str, Any] = {"type": "custom", "custom": {"name": started.name, "input": ""}}
        else:
            body = {"type": "function", "function": {"name": started.name, "arguments": ""}}
        return {"tool_calls": [{"index": started.index, "id": started.call_id, **body}]}

    def _call_delta(self, delta: events_pb2.ClientToolCallDelta) -> dict[str, Any]:
        if not delta.delta:
            return {}
        if self.legacy_functions:
            return {"function_call": {"arguments": delta.delta}}
        if self.call_kinds.get(delta.index) == content_pb2.CLIENT_TOOL_KIND_CUSTOM:
            return {"tool_calls": [{"index": delta.index, "custom": {"input": delta.delta}}]}
        return {"tool_calls": [{"index": delta.index, "function": {"arguments": delta.delta}}]}

    @property
    def tool_calls(self) -> list[content_pb2.ClientToolCall]:
        return list(self.completed.tool_calls) if self.completed is not None else []

    def tool_calls_json(self) -> list[dict[str, Any]] | None:
        calls = self.tool_calls
        if not calls or self.legacy_functions:
            return None
        return [_call_json(c) for c in calls]

    def function_call_json(self) -> dict[str, str] | None:
        calls = self.tool_calls
        if not calls or not self.legacy_functions:
            return None
        return {"name": calls[0].name, "arguments": calls[0].arguments_json}

    def _reason(self, text: str) -> dict[str, str]:
        if not text:
            return {}
        self.reasoning.append(text)
        return {"reasoning_content": text, "reasoning": text}

    @property
    def finish_reason(self) -> str:
        if self.completed is None:
            return "stop"
        finish = _FINISH.get(self.completed.finish_reason, "stop")
        return "function_call" if finish == "tool_calls" and self.legacy_functions else finish

    def summary(self) -> str:
        """The markdown file summary to append to the content ("" when off or unchanged)."""
        return file_summary.render(self.files.values()) if self.file_summary else ""

    def usage_json(self) -> dict[str, Any] | None:
        return usage_dict(self.usage) if self.usage is not None else None

    # --- rendering -----------------------------------------------------------------

    def chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def final_chunk(self) -> dict[str, Any]:
        out = self.chunk({}, self.finish_reason)
        out["claude_code"] = self.claude_code()
        return out

    def usage_chunk(self) -> dict[str, Any]:
        out = self.chunk({})
        out["choices"] = []
        out["usage"] = self.usage_json() or usage_dict(events_pb2.Usage())
        return out

    def completion(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.completed is not None and self.completed.text:
            text = self.completed.text
        text += self.summary()
        reasoning = "".join(self.reasoning) or None
        tool_calls, function_call = self.tool_calls_json(), self.function_call_json()
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        # As OpenAI: null content beside tool calls when the model wrote none.
                        "content": text or (None if tool_calls or function_call else ""),
                        "refusal": None,
                        "reasoning_content": reasoning,
                        "reasoning": reasoning,
                        **({"tool_calls": tool_calls} if tool_calls else {}),
                        **({"function_call": function_call} if function_call else {}),
                    },
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage_json() or usage_dict(events_pb2.Usage()),
            "claude_code": self.claude_code(),
        }


def _call_json(call: content_pb2.ClientToolCall) -> dict[str, Any]:
    """A call as `message.tool_calls[]`: the client's name, arguments as JSON text."""
    if call.kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM:
        return {
            "id": call.call_id,
            "type": "custom",
            "custom": {"name": call.name, "input": call.input},
        }
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json or "{}"},
    }
