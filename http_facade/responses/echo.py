"""The request parameters a response object repeats back (:class:`Echo`).

Every field the spec marks required is filled: what the client sent, else the
spec's default (sampling fields are numbers, never null: temperature and top_p
1, the penalties 0, top_logprobs 0). Claude Code has no sampling knobs; the
values are echoed only, as OpenAI clients expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claudecode.v1 import agent_pb2
from http_facade.structured_output import text_format_of

from .protocol import PREFIX, ResponseCreateRequest

# The spec's defaults for sampling fields a request left out.
TEMPERATURE = 1.0
TOP_P = 1.0
PENALTY = 0.0


@dataclass(frozen=True)
class Echo:
    """Request parameters a response object repeats back."""

    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    store: bool = True
    temperature: float = TEMPERATURE
    top_p: float = TOP_P
    presence_penalty: float = PENALTY
    frequency_penalty: float = PENALTY
    top_logprobs: int = 0
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    reasoning_effort: str | None = None
    reasoning_summary: str | None = None
    truncation: str = "disabled"
    verbosity: str = "medium"
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    service_tier: str = "default"
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    tools: tuple[Any, ...] = ()

    @classmethod
    def of_request(cls, req: ResponseCreateRequest) -> Echo:
        reasoning = req.reasoning
        return cls(
            tools=tuple(_tool(t) for t in req.tools or ()),
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            previous_response_id=req.previous_response_id,
            store=req.store is not False,
            temperature=_number(req.temperature, TEMPERATURE),
            top_p=_number(req.top_p, TOP_P),
            presence_penalty=_number(req.presence_penalty, PENALTY),
            frequency_penalty=_number(req.frequency_penalty, PENALTY),
            top_logprobs=req.top_logprobs or 0,
            tool_choice=req.tool_choice or "auto",
            parallel_tool_calls=req.parallel_tool_calls is not False,
            metadata=dict(req.metadata or {}),
            user=req.user,
            reasoning_effort=reasoning.effort if reasoning else None,
            reasoning_summary=(reasoning.summary or reasoning.generate_summary)
            if reasoning
            else None,
            truncation=req.truncation or "disabled",
            verbosity=(req.text.verbosity if req.text and req.text.verbosity else "medium"),
            text_format=_text_format(req.text.format if req.text else None),
            service_tier="default",
            safety_identifier=req.safety_identifier,
            prompt_cache_key=req.prompt_cache_key,
        )

    @classmethod
    def of_turn(cls, turn: agent_pb2.Turn) -> Echo:
        o = turn.options
        return cls(
            instructions=turn.instructions or None,
            max_output_tokens=o.max_output_tokens or None,
            previous_response_id=PREFIX + turn.parent_turn_id if turn.parent_turn_id else None,
            store=True,
            temperature=o.temperature if o.HasField("temperature") else TEMPERATURE,
            top_p=o.top_p if o.HasField("top_p") else TOP_P,
            presence_penalty=o.presence_penalty if o.HasField("presence_penalty") else PENALTY,
            frequency_penalty=o.frequency_penalty if o.HasField("frequency_penalty") else PENALTY,
            metadata=dict(turn.metadata),
            user=o.user or None,
            reasoning_effort=o.reasoning_effort or None,
            text_format=_text_format(text_format_of(turn.output_format)),
        )


def _number(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _tool(tool: Any) -> Any:
    """A function tool with every field the spec requires (null when not sent)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"description": None, "parameters": None, "strict": None, **tool}
    return tool


def _text_format(fmt: dict[str, Any] | None) -> dict[str, Any]:
    """``text.format`` with the fields the spec requires of a json_schema format."""
    if not fmt:
        return {"type": "text"}
    out = dict(fmt)
    if out.get("type") == "json_schema":
        out.setdefault("description", None)
        out["strict"] = bool(out.get("strict"))  # what the service applied
    return out
