"""Responses API wire models (pydantic v2): the request validated, the rest documented.

Like chat, requests forbid unknown fields; parameters the service refuses are
checked on the raw body first (:data:`UNSUPPORTED`) so they get
``code: "unsupported_parameter"``. Input items the official SDK sends back when
a client manages the conversation itself (our own ``reasoning`` and
``mcp_call`` output items) are accepted and skipped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from http_facade.wire import (
    INT32_MAX,
    ClaudeCodeInfo,
    ReasoningEffort,
    Strict,
    check_metadata,
    tag_of,
)

# The server_label of the mcp_call items that show Claude Code's own tool calls.
SERVER_LABEL = "claude_code"
# Response ids are "resp_" + the core's turn id.
PREFIX = "resp_"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


# --- input ---------------------------------------------------------------------------


class InputText(Strict):
    type: Literal["input_text"]
    text: str
    prompt_cache_breakpoint: dict[str, Any] | None = Field(None, description="Ignored.")


class InputImage(Strict):
    type: Literal["input_image"]
    image_url: str | None = Field(None, description="An https URL or a data:image/... URL.")
    file_id: str | None = Field(None, description="Not supported (no Files API).")
    detail: Literal["low", "high", "auto", "original"] | None = Field(
        None, description="Accepted and ignored."
    )
    prompt_cache_breakpoint: dict[str, Any] | None = Field(None, description="Ignored.")


class InputFile(Strict):
    type: Literal["input_file"]
    file_data: str | None = Field(None, description="A base64 data URL (or bare base64).")
    file_id: str | None = Field(None, description="An uploaded file of this key.")
    filename: str | None = Field(None, description="Its name in the workspace.")
    file_url: str | None = Field(None, description="Not supported (400).")
    detail: Literal["low", "high", "auto"] | None = Field(None, description="Accepted and ignored.")
    prompt_cache_breakpoint: dict[str, Any] | None = Field(None, description="Ignored.")


class OutputText(Strict):
    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(Strict):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[
    Annotated[InputText, Tag("type=input_text")]
    | Annotated[InputImage, Tag("type=input_image")]
    | Annotated[InputFile, Tag("type=input_file")],
    Discriminator(
        tag_of("type"),
        custom_error_type="invalid_part",
        custom_error_message="content part type must be input_text, input_image or input_file",
    ),
]
AssistantPart = Annotated[
    Annotated[OutputText, Tag("type=output_text")]
    | Annotated[InputText, Tag("type=input_text")]
    | Annotated[Refusal, Tag("type=refusal")],
    Discriminator(
        tag_of("type"),
        custom_error_type="invalid_part",
        custom_error_message="content part type must be output_text, input_text or refusal",
    ),
]

MessageStatus = Literal["in_progress", "completed", "incomplete"]


class UserInput(Strict):
    type: Literal["message"] | None = None
    role: Literal["user"]
    content: str | list[UserPart]
    id: str | None = None
    status: MessageStatus | None = None


class SystemInput(Strict):
    """system and developer messages: appended to Claude Code's system prompt."""

    type: Literal["message"] | None = None
    role: Literal["system", "developer"]
    content: str | list[InputText]
    id: str | None = None
    status: MessageStatus | None = None


class AssistantInput(Strict):
    type: Literal["message"] | None = None
    role: Literal["assistant"]
    content: str | list[AssistantPart]
    id: str | None = None
    status: MessageStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None


class ReasoningInput(_Loose):
    """One of our reasoning output items sent back: skipped (thinking is in the session)."""

    type: Literal["reasoning"]


class McpCallInput(_Loose):
    """One of our mcp_call output items sent back: skipped (it already ran)."""

    type: Literal["mcp_call"]


class FunctionCallInput(_Loose):
    """A client tool call the model made earlier (our function_call output item)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str
    arguments: str
    id: str | None = None
    namespace: str | None = None


class CustomToolCallInput(_Loose):
    """A custom tool call the model made earlier (our custom_tool_call output item)."""

    type: Literal["custom_tool_call"]
    call_id: str = Field(min_length=1)
    name: str
    input: str
    id: str | None = None
    namespace: str | None = None


class FunctionCallOutputInput(_Loose):
    """The client's result of a call, matched by call_id."""

    type: Literal["function_call_output", "custom_tool_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[Any]
    id: str | None = None


class HostedCallInput(_Loose):
    """A hosted tool's item (web_search_call, tool_search_call, ...) resent by a
    client keeping the history itself: nothing ran it here, so it is skipped."""

    type: Literal[
        "web_search_call",
        "tool_search_call",
        "tool_search_output",
        "local_shell_call",
        "local_shell_call_output",
        "compaction",
    ]


HOSTED_ITEM_TYPES = (
    "web_search_call",
    "tool_search_call",
    "tool_search_output",
    "local_shell_call",
    "local_shell_call_output",
    "compaction",
)
_TAGGED = (
    "reasoning",
    "mcp_call",
    "function_call",
    "custom_tool_call",
    "function_call_output",
    "custom_tool_call_output",
)


def _item_of(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind in ("function_call_output", "custom_tool_call_output"):
        return "type=function_call_output"
    if kind in HOSTED_ITEM_TYPES:
        return "type=hosted"
    if kind in _TAGGED:
        return f"type={kind}"
    role = value.get("role")
    if kind in (None, "message") and isinstance(role, str):
        return "role=system" if role == "developer" else f"role={role}"
    return None


InputItem = Annotated[
    Annotated[UserInput, Tag("role=user")]
    | Annotated[SystemInput, Tag("role=system")]
    | Annotated[AssistantInput, Tag("role=assistant")]
    | Annotated[ReasoningInput, Tag("type=reasoning")]
    | Annotated[McpCallInput, Tag("type=mcp_call")]
    | Annotated[FunctionCallInput, Tag("type=function_call")]
    | Annotated[CustomToolCallInput, Tag("type=custom_tool_call")]
    | Annotated[FunctionCallOutputInput, Tag("type=function_call_output")]
    | Annotated[HostedCallInput, Tag("type=hosted")],
    Discriminator(
        _item_of,
        custom_error_type="invalid_item",
        custom_error_message="input items must be messages with role user, assistant, system "
        "or developer",
    ),
]


class StreamOptions(Strict):
    include_obfuscation: bool | None = Field(None, description="Accepted and ignored.")


class ReasoningConfig(Strict):
    effort: ReasoningEffort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="Accepted; thinking is always summarised as it is."
    )
    generate_summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="Deprecated alias of summary; accepted."
    )


class TextConfig(Strict):
    # text, json_object or json_schema, checked by http_facade/structured_output.py.
    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = Field(
        None, description="Accepted and ignored."
    )


class ResponseCreateRequest(Strict):
    """POST /v1/responses. Fields marked "ignored" are accepted but cannot reach
    Claude Code; see http_facade/README.md."""

    model: str | None = Field(None, min_length=1, max_length=256)
    input: str | list[InputItem]
    instructions: str | None = None
    previous_response_id: str | None = Field(None, max_length=256)
    store: bool | None = Field(None, description="Default true: retrievable with GET.")
    metadata: dict[str, str] | None = Field(None, description="Up to 16 pairs.")
    max_output_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    user: str | None = Field(None, max_length=256)
    # Accepted and ignored (Claude Code exposes no such knob).
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted and ignored.")
    top_p: float | None = Field(None, ge=0, le=1, description="Accepted and ignored.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Accepted and ignored.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Accepted and ignored.")
    parallel_tool_calls: bool | None = Field(None, description="False: one tool call at a time.")
    truncation: Literal["auto", "disabled"] | None = Field(
        None, description="Accepted and ignored."
    )
    include: list[str] | None = Field(
        None, description='Accepted and ignored (e.g. "reasoning.encrypted_content").'
    )
    client_metadata: dict[str, Any] | None = Field(
        None, description="Accepted and ignored (Codex sends it)."
    )
    claude_code: dict[str, Any] | None = Field(
        None, description='Extension: {"builtin_tools": true | [names]}.'
    )
    service_tier: str | None = Field(None, description="Accepted and ignored.")
    prompt_cache_key: str | None = Field(None, description="Accepted and ignored.")
    prompt_cache_retention: str | None = Field(None, description="Accepted and ignored.")
    safety_identifier: str | None = Field(None, description="Accepted and ignored.")
    # Accepted only in their neutral form; anything else is "unsupported_parameter".
    # Checked by http_facade.tool_calls.responses_tools.
    tools: list[Any] | None = Field(None, description="function, custom, namespace, hosted.")
    tool_choice: Any = Field(None, description="none, auto, required, a named tool, allowed_tools.")
    background: bool | None = Field(
        None, description="True: the turn runs on with no client attached (needs store)."
    )
    conversation: Any = Field(None, description="Only null.")
    prompt: Any = Field(None, description="Only null.")
    max_tool_calls: int | None = Field(None, description="Only null.")
    top_logprobs: int | None = Field(None, description="Only 0.")
    context_management: Any = Field(None, description="Only null.")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(v)

    @field_validator("input")
    @classmethod
    def _input(cls, v: str | list[Any]) -> str | list[Any]:
        if isinstance(v, list) and not v:
            raise ValueError("input must not be empty")
        return v


# Parameter -> "is this value harmless?". A non-harmless value is refused.
UNSUPPORTED: dict[str, Any] = {
    "conversation": lambda v: v is None,
    "prompt": lambda v: v is None,
    "max_tool_calls": lambda v: v is None,
    "top_logprobs": lambda v: v is None or v == 0,
    "context_management": lambda v: v is None,
}

# Input item types only function calling (or OpenAI's hosted tools) would need.
SUPPORTED_ITEM_TYPES = (None, "message", *_TAGGED, *HOSTED_ITEM_TYPES)

# --- output (documentation of what the facade sends) ------------------------------


class OutputTextPart(BaseModel):
    type: Literal["output_text"]
    text: str
    annotations: list[Any]
    logprobs: list[Any]


Phase = Literal["commentary", "final_answer"]


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: MessageStatus
    content: list[OutputTextPart]
    phase: Phase | None = Field(
        None,
        description="commentary: text a tool call (or more thinking) follows; final_answer: "
        "the text the turn ends on. Absent in response.output_item.added (not known yet).",
    )


class SummaryText(BaseModel):
    type: Literal["summary_text"]
    text: str


class ReasoningItem(BaseModel):
    """Claude's thinking, as a reasoning summary."""

    id: str
    type: Literal["reasoning"]
    summary: list[SummaryText]


class McpToolExecutionError(BaseModel):
    type: Literal["mcp_tool_execution_error"]
    content: Any


class McpCall(BaseModel):
    """A tool call Claude Code made and ran itself (Write, Edit, Bash, ...)."""

    id: str
    type: Literal["mcp_call"]
    server_label: Literal["claude_code"]
    name: str
    arguments: str = Field(description="The tool input as JSON.")
    output: str | None = Field(description="The start of the tool's output.")
    error: McpToolExecutionError | None
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    approval_request_id: None = None


class FunctionCallItem(BaseModel):
    """A call of one of the request's function tools; the client runs it."""

    id: str
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed"]


class CustomToolCallItem(BaseModel):
    """A call of one of the request's custom tools; `input` is what the model wrote."""

    id: str
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str
    status: Literal["in_progress", "completed"]


OutputItem = Annotated[
    OutputMessage | ReasoningItem | McpCall | FunctionCallItem | CustomToolCallItem,
    Field(discriminator="type"),
]


class InputTokensDetails(BaseModel):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"] | None


class ResponseObject(BaseModel):
    """A response, as returned by create, retrieve and cancel (and inside stream events)."""

    id: str = Field(description="resp_<turn id>")
    object: Literal["response"]
    created_at: int
    completed_at: int | None
    status: Literal["completed", "failed", "in_progress", "cancelled", "incomplete", "queued"]
    background: bool
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: dict[str, Any]
    service_tier: str
    store: bool
    temperature: float = Field(description="As sent, else 1 (echoed only).")
    top_p: float = Field(description="As sent, else 1 (echoed only).")
    presence_penalty: float = Field(description="As sent, else 0 (echoed only).")
    frequency_penalty: float = Field(description="As sent, else 0 (echoed only).")
    text: dict[str, Any]
    tool_choice: Any
    tools: list[Any]
    top_logprobs: int
    truncation: str
    usage: ResponseUsage | None
    user: str | None
    metadata: dict[str, str]
    safety_identifier: str | None
    prompt_cache_key: str | None
    claude_code: ClaudeCodeInfo


class StreamEvent(BaseModel):
    """One SSE event (`event: <type>` and `data: {...}`); see OpenAI's streaming events."""

    model_config = ConfigDict(extra="allow")
    type: str
    sequence_number: int


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response"]
    deleted: Literal[True]


class InputItemContent(BaseModel):
    type: Literal["input_text", "input_image"]
    text: str | None = None
    image_url: str | None = None
    detail: str | None = None
    file_id: None = None


class InputMessageItem(BaseModel):
    id: str
    type: Literal["message"]
    role: Literal["user", "system", "developer"]
    status: Literal["completed"]
    content: list[InputItemContent]


class InputAssistantItem(BaseModel):
    """An assistant message of the input, as an output message, with the phase it was sent with."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: Literal["completed"]
    content: list[OutputTextPart]
    phase: Phase | None = None


class FunctionCallOutputItem(BaseModel):
    """A client tool's result the request brought."""

    id: str
    type: Literal["function_call_output"]
    call_id: str
    output: str
    status: Literal["completed"]


class InputItemList(BaseModel):
    object: Literal["list"]
    data: list[
        InputMessageItem
        | InputAssistantItem
        | FunctionCallItem
        | CustomToolCallItem
        | FunctionCallOutputItem
    ]
    first_id: str | None
    last_id: str | None
    has_more: bool
