"""How a turn's end shows on a response: status, its stream's last event,
``usage``, ``error`` and ``incomplete_details``.
"""

from __future__ import annotations

from typing import Any

from claudecode.v1 import events_pb2
from http_facade.errors import ApiError


def usage_dict(u: events_pb2.Usage) -> dict[str, Any]:
    """Responses usage from Claude Code's own numbers (never estimated)."""
    prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_input_tokens,
            "cache_write_tokens": u.cache_creation_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": prompt + u.output_tokens,
    }


# ResponseError.code is an enumeration in OpenAI's spec; ours map onto it.
_ERROR_CODES = {
    "rate_limit_exceeded",
    "invalid_image",
    "invalid_image_format",
    "invalid_base64_image",
    "invalid_image_url",
    "image_too_large",
}


def error_dict(err: ApiError) -> dict[str, Any]:
    """An ApiError as the response object's ``error``."""
    if err.code in _ERROR_CODES:
        code = str(err.code)
    elif err.status == 429:
        code = "rate_limit_exceeded"
    else:
        code = "server_error"
    return {"code": code, "message": err.message}


_INCOMPLETE = {
    events_pb2.FINISH_REASON_LENGTH,
    events_pb2.FINISH_REASON_MAX_TURNS,
    events_pb2.FINISH_REASON_BUDGET,
}

# Terminal status -> the stream's last event.
FINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "cancelled": "response.incomplete",
    "failed": "response.failed",
}


def status_of(finish: events_pb2.FinishReason.ValueType) -> str:
    if finish == events_pb2.FINISH_REASON_CANCELLED:
        return "cancelled"
    if finish in _INCOMPLETE:
        return "incomplete"
    return "completed"


def incomplete_details(status: str) -> dict[str, Any] | None:
    """Why an incomplete response stopped. Every limit Claude Code reports (output
    tokens, turns, budget) is a length limit; OpenAI's enumeration names it so."""
    return {"reason": "max_output_tokens"} if status == "incomplete" else None
