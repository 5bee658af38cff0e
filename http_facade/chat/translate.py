"""OpenAI Chat Completions <-> claudecode.v1 conversion, both directions.

Pure functions and one small accumulator; no I/O.
"""

from __future__ import annotations

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
from http_facade.turns import TurnRecord

from .protocol import (
    UNSUPPORTED,
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FilePart,
    ImagePart,
    RefusalPart,
    SystemMessage,
    TextPart,
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
        role = msg.get("role")
        if role in ("tool", "function"):
            raise unsupported(f"messages[{i}].role", f"role '{role}' messages")
        for key in ("tool_calls", "function_call", "audio", "tool_call_id"):
            if msg.get(key) not in (None, []):
                raise unsupported(f"messages[{i}].{key}")
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in ("input_audio", "audio"):
                    raise unsupported(f"messages[{i}].content[{j}].type", f"'{kind}' parts")


def validate_request(body: Any) -> ChatCompletionRequest:
    """The request body as a model, or an ApiError (400) naming the param."""
    return validate_body(body, ChatCompletionRequest, UNSUPPORTED, _check_messages)


AnyMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage


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


def to_run_turn_request(
    req: ChatCompletionRequest, *, session_id: str, request_id: str
) -> agent_pb2.RunTurnRequest:
    """The RunTurnRequest for a validated chat request."""
    messages = [
        content_pb2.Message(role=ROLES[m.role], content=_parts(m, i), name=m.name or "")
        for i, m in enumerate(req.messages)
    ]
    max_tokens = req.max_completion_tokens or req.max_tokens or 0
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    options = agent_pb2.TurnOptions(
        max_output_tokens=max_tokens,
        reasoning_effort=reasoning_effort(req.reasoning_effort),
        stop=[s for s in stop if s],
        user=req.user or "",
    )
    return agent_pb2.RunTurnRequest(
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


# --- response --------------------------------------------------------------------------

_FINISH = {
    events_pb2.FINISH_REASON_UNSPECIFIED: "stop",
    events_pb2.FINISH_REASON_STOP: "stop",
    events_pb2.FINISH_REASON_STOP_SEQUENCE: "stop",
    events_pb2.FINISH_REASON_LENGTH: "length",
    events_pb2.FINISH_REASON_MAX_TURNS: "length",
    events_pb2.FINISH_REASON_BUDGET: "length",
    events_pb2.FINISH_REASON_CANCELLED: "stop",
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

    def start(self, ev: events_pb2.TurnStarted, requested_model: str) -> None:
        self.begin(ev, requested_model)
        self.id = f"chatcmpl-{ev.turn_id}"
        if ev.created_at:
            self.created = int(ev.created_at)

    # Each returns the delta to stream (empty dict: nothing to send).
    def on_event(self, ev: agent_pb2.RunTurnResponse) -> dict[str, str]:
        kind = ev.WhichOneof("event")
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

    def _reason(self, text: str) -> dict[str, str]:
        if not text:
            return {}
        self.reasoning.append(text)
        return {"reasoning_content": text, "reasoning": text}

    @property
    def finish_reason(self) -> str:
        if self.completed is None:
            return "stop"
        return _FINISH.get(self.completed.finish_reason, "stop")

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
                        "content": text,
                        "refusal": None,
                        "reasoning_content": reasoning,
                        "reasoning": reasoning,
                    },
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage_json() or usage_dict(events_pb2.Usage()),
            "claude_code": self.claude_code(),
        }
