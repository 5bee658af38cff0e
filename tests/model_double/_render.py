"""Turn a Reply into Anthropic wire data (SSE events or a Message). Pure, no I/O."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._recorded import RecordedRequest
from ._reply import Block, Reply, TextBlock, ThinkingBlock, ToolUseBlock

AUX_TEXT = "Model double session"


@dataclass(frozen=True)
class Pause:
    """Tells the server to wait (abortably) before the next event."""

    seconds: float


Event = tuple[str, dict[str, Any]]
Step = Event | Pause


def split_text(text: str, chunks: int | None = None) -> list[str]:
    """Split text into delta pieces that join back to `text` exactly.

    Default: one piece per word, but at least 4 pieces (by characters) so short
    replies still exercise incremental streaming.
    """
    if not text:
        return []
    words = re.findall(r"\s*\S+", text)
    tail = text[len("".join(words)) :]  # trailing whitespace stays with the last piece
    if tail:
        words = [*words[:-1], words[-1] + tail] if words else [tail]
    wanted = chunks if chunks is not None else max(4, len(words))
    wanted = max(1, min(wanted, len(text)))
    units = words if wanted <= len(words) else list(text)
    return [
        "".join(units[i * len(units) // wanted : (i + 1) * len(units) // wanted])
        for i in range(wanted)
    ]


def _split_json(data: str) -> list[str]:
    # At least two partial_json pieces: clients must really accumulate them.
    pieces = 3 if len(data) >= 3 else 2
    return [data[i * len(data) // pieces : (i + 1) * len(data) // pieces] for i in range(pieces)]


def _with_cwd(value: Any, cwd: str | None) -> Any:
    if isinstance(value, str):
        return value.replace("{cwd}", cwd) if cwd is not None else value
    if isinstance(value, Mapping):
        return {k: _with_cwd(v, cwd) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_with_cwd(v, cwd) for v in value]
    return value


def new_message_id() -> str:
    return f"msg_double_{uuid.uuid4().hex[:24]}"


def _tool_id(block: ToolUseBlock) -> str:
    return block.id if block.id is not None else f"toolu_double_{uuid.uuid4().hex[:24]}"


def usage_for(reply: Reply, output_tokens: int) -> dict[str, int]:
    usage = {
        "input_tokens": 10,
        "output_tokens": max(1, output_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    usage.update(reply.usage or {})
    return usage


def _output_estimate(blocks: tuple[Block, ...]) -> int:
    words = 0
    for block in blocks:
        if isinstance(block, TextBlock):
            words += len(block.text.split())
        elif isinstance(block, ThinkingBlock):
            words += len(block.thinking.split())
        else:
            words += len(json.dumps(dict(block.input)).split())
    return words


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _message_shell(request: RecordedRequest, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": request.model or "claude-model-double",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def sse_steps(reply: Reply, request: RecordedRequest, message_id: str) -> Iterator[Step]:
    """The SSE events for a message or mid-stream-error reply, with pauses in between."""
    cwd = request.working_directory
    usage = usage_for(reply, _output_estimate(reply.blocks))
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {**_message_shell(request, message_id), "usage": usage},
        },
    )
    yield "ping", {"type": "ping"}
    if reply.hang_seconds > 0:
        yield Pause(reply.hang_seconds)

    first_delta = True

    def delta(index: int, body: dict[str, Any]) -> Iterator[Step]:
        nonlocal first_delta
        if reply.delay > 0 and not first_delta:
            yield Pause(reply.delay)
        was_first, first_delta = first_delta, False
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}
        if was_first and reply.stall_seconds > 0:
            yield Pause(reply.stall_seconds)

    for index, block in enumerate(reply.blocks):
        if isinstance(block, TextBlock):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": t} for t in split_text(block.text, block.chunks)
            ]
        elif isinstance(block, ThinkingBlock):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": t} for t in split_text(block.thinking)]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        else:
            start = {"type": "tool_use", "id": _tool_id(block), "name": block.name, "input": {}}
            data = json.dumps(_with_cwd(block.input, cwd))
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _split_json(data)]
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": start,
            },
        )
        for body in deltas:
            yield from delta(index, body)
        yield "content_block_stop", {"type": "content_block_stop", "index": index}

    if reply.kind == "error":
        yield "error", error_body(reply.error_type, reply.error_message)
        return
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )
    yield "message_stop", {"type": "message_stop"}


def message_json(reply: Reply, request: RecordedRequest, message_id: str) -> dict[str, Any]:
    """The non-streaming Message for a message reply."""
    cwd = request.working_directory
    content: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, ThinkingBlock):
            content.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(block),
                    "name": block.name,
                    "input": _with_cwd(block.input, cwd),
                }
            )
    return {
        **_message_shell(request, message_id),
        "content": content,
        "stop_reason": reply.stop_reason,
        "usage": usage_for(reply, _output_estimate(reply.blocks)),
    }


def _schema_example(schema: Any) -> Any:
    """A minimal value satisfying a simple JSON schema (enough for title generation)."""
    if not isinstance(schema, dict):
        return AUX_TEXT
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {name: _schema_example(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return AUX_TEXT


# Starts every summary compaction_reply writes.
COMPACTION_SUMMARY_PREFIX = "Summary by the model double of the conversation so far:"


def auxiliary_reply(request: RecordedRequest) -> Reply:
    """Short answer for side requests (title generation etc.).

    The CLI asks for the session title with `output_config.format` = json_schema
    and parses the text as JSON, so answer with JSON matching the schema then.
    """
    config = request.body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return Reply.text(json.dumps(_schema_example(fmt.get("schema"))), chunks=1)
    return Reply.text(AUX_TEXT, chunks=1)


def compaction_reply(request: RecordedRequest) -> Reply:
    """A compaction summary the way Claude Code asks for it (analysis, then
    summary), quoting the conversation so a test can see what was summarised."""
    quoted = "\n".join(f"- {text[:200]}" for text in request.conversation_texts)
    return Reply.text(
        f"<analysis>The model double read {len(request.conversation_texts)} messages.</analysis>\n"
        f"<summary>{COMPACTION_SUMMARY_PREFIX}\n{quoted}</summary>"
    )


def count_tokens_json(request: RecordedRequest) -> dict[str, Any]:
    # Rough 4-bytes-per-token estimate; deterministic for a given request.
    return {"input_tokens": max(1, len(request.raw_body) // 4)}
