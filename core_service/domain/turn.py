"""A turn as the core keeps it: what came in, what Claude Code did (in order),
what it used, and how it ended.

`Turn` is mutable while its turn runs (the pipeline fills it in); everything
inside it is a frozen value. Optional parts (`options`, `output_format`,
`usage`, `error`) are None when the turn never had them, which a reader of a
stored turn can tell apart from zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from core_service.domain.content import ClientTool, ClientToolCall, ClientToolOutput, Message


class TurnStatus(StrEnum):
    UNSPECIFIED = "unspecified"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"
    # A background turn waiting for a running slot.
    QUEUED = "queued"


class FinishReason(StrEnum):
    UNSPECIFIED = "unspecified"
    STOP = "stop"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    MAX_TURNS = "max_turns"
    CANCELLED = "cancelled"
    BUDGET = "budget"
    TOOL_CALLS = "tool_calls"


class FileChangeKind(StrEnum):
    UNSPECIFIED = "unspecified"
    CREATED = "created"
    MODIFIED = "modified"
    DELETED = "deleted"


class OutputFormatKind(StrEnum):
    UNSPECIFIED = "unspecified"
    JSON_SCHEMA = "json_schema"
    JSON_OBJECT = "json_object"


@dataclass(frozen=True)
class Usage:
    """Claude Code's own figures for a turn (or the sum over a session's turns)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class TextItem:
    text: str = ""
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ReasoningItem:
    text: str = ""
    type: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True)
class ToolUse:
    """A Claude Code built-in tool the agent used."""

    id: str = ""
    name: str = ""
    input_json: str = ""
    summary: str = ""
    type: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str = ""
    is_error: bool = False
    output_excerpt: str = ""
    truncated: bool = False
    type: Literal["tool_result"] = "tool_result"


# One output item of a turn, in the order the turn produced them.
TurnItem = Annotated[
    TextItem | ReasoningItem | ToolUse | ToolResult | ClientToolCall | ClientToolOutput,
    Field(discriminator="type"),
]


@dataclass(frozen=True)
class FileChange:
    kind: FileChangeKind = FileChangeKind.UNSPECIFIED
    path: str = ""
    size_bytes: int = 0
    binary: bool = False
    diff: str = ""
    diff_truncated: bool = False


@dataclass(frozen=True)
class TurnOptions:
    max_output_tokens: int = 0
    reasoning_effort: str = ""
    stop: tuple[str, ...] = ()
    user: str = ""
    # Sampling values as sent (None: not sent); only echoed, Claude Code has no such knobs.
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True)
class OutputFormat:
    kind: OutputFormatKind = OutputFormatKind.UNSPECIFIED
    name: str = ""
    description: str = ""
    schema_json: str = ""
    strict: bool = False


@dataclass(frozen=True)
class TurnError:
    """Why a turn failed: a gRPC status code number, our reason, a retry hint."""

    code: int = 0
    message: str = ""
    reason: str = ""
    retry_after_seconds: int = 0


@dataclass
class Turn:
    id: str = ""
    session_id: str = ""
    parent_turn_id: str = ""
    model: str = ""
    status: TurnStatus = TurnStatus.UNSPECIFIED
    # Unix seconds.
    created_at: int = 0
    completed_at: int = 0
    input: tuple[Message, ...] = ()
    instructions: str = ""
    output_text: str = ""
    reasoning: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    files: tuple[FileChange, ...] = ()
    usage: Usage | None = None
    finish_reason: FinishReason = FinishReason.UNSPECIFIED
    error: TurnError | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    options: TurnOptions | None = None
    items: tuple[TurnItem, ...] = ()
    client_tools: tuple[ClientTool, ...] = ()
    client_tool_calls: tuple[ClientToolCall, ...] = ()
    output_format: OutputFormat | None = None
    # Runs with no client attached (Responses background mode).
    background: bool = False

    @property
    def used(self) -> Usage:
        """Its usage, zeros when it has none yet."""
        return self.usage or Usage()
