"""Wire-model pieces the Chat Completions and Responses protocols share (pydantic v2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

INT32_MAX = 2**31 - 1

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class Strict(BaseModel):
    """Request models: unknown fields are refused, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def tag_of(key: str) -> Callable[[Any], str | None]:
    """A discriminator that tags a dict or model by its ``key`` field: ``"type=text"``.

    Tags are not identifiers, so error locations can drop them (see inputs.param_of).
    """

    def tag(value: Any) -> str | None:
        found = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        return f"{key}={found}" if isinstance(found, str) else None

    return tag


def check_metadata(v: dict[str, str] | None) -> dict[str, str] | None:
    """OpenAI's limits on ``metadata``: 16 pairs, keys of 64 and values of 512 characters."""
    if v is None:
        return v
    if len(v) > 16:
        raise ValueError("at most 16 metadata pairs")
    for key, value in v.items():
        if len(key) > 64 or len(value) > 512:
            raise ValueError("metadata keys are at most 64 and values 512 characters")
    return v


class FileInfo(BaseModel):
    path: str
    kind: Literal["created", "modified", "deleted", "unspecified"]
    size_bytes: int
    binary: bool
    diff: str | None = None
    diff_truncated: bool = False


class ClaudeCodeInfo(BaseModel):
    """Extension: the session and what Claude Code did in the turn."""

    session_id: str
    turn_id: str
    files: list[FileInfo]
    cost_usd: float | None = None
    num_turns: int | None = None
