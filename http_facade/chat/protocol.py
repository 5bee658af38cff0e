"""Chat Completions wire models (pydantic v2): requests validated, responses documented.

Request models forbid unknown fields; the known-harmless OpenAI parameters that
cannot reach Claude Code are declared (so they are type-checked) and ignored.
Parameters the service refuses are checked on the raw body before validation
(see :data:`UNSUPPORTED`), so they get ``code: "unsupported_parameter"``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator

from http_facade.wire import (
    INT32_MAX,
    ClaudeCodeInfo,
    ReasoningEffort,
    Strict,
    check_metadata,
    tag_of,
)

# --- content parts -------------------------------------------------------------------


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ImageURL(Strict):
    url: str = Field(description="An https URL or a data:image/...;base64 URL.")
    detail: Literal["auto", "low", "high"] | None = Field(None, description="Accepted and ignored.")


class ImagePart(Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class RefusalPart(Strict):
    type: Literal["refusal"]
    refusal: str


class FileSpec(Strict):
    file_data: str | None = Field(None, description="A base64 data URL (or bare base64).")
    file_id: str | None = Field(None, description="An uploaded file of this key.")
    filename: str | None = Field(None, description="Its name in the workspace.")


class FilePart(Strict):
    type: Literal["file"]
    file: FileSpec


UserPart = Annotated[
    Annotated[TextPart, Tag("type=text")]
    | Annotated[ImagePart, Tag("type=image_url")]
    | Annotated[FilePart, Tag("type=file")],
    Discriminator(
        tag_of("type"),
        custom_error_type="invalid_part",
        custom_error_message="content part type must be text, image_url or file",
    ),
]
AssistantPart = Annotated[
    Annotated[TextPart, Tag("type=text")] | Annotated[RefusalPart, Tag("type=refusal")],
    Discriminator(
        tag_of("type"),
        custom_error_type="invalid_part",
        custom_error_message="content part type must be text or refusal",
    ),
]

# --- messages ------------------------------------------------------------------------


class SystemMessage(Strict):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(Strict):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(Strict):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class FunctionCall(Strict):
    name: str
    arguments: str


class CustomCall(Strict):
    name: str
    input: str


class ToolCall(Strict):
    """A call the model made earlier, as the client resends it."""

    id: str = Field(min_length=1)
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = None
    custom: CustomCall | None = None


class AssistantMessage(Strict):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = Field(None, description="Legacy `functions`.")
    # Our own thinking, as a client that resends our messages whole sends it
    # back: accepted and ignored (Claude Code keeps it in the session).
    reasoning_content: str | None = None
    reasoning: str | None = None


class ToolMessage(Strict):
    """A client tool's result, answering `tool_call_id`."""

    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(min_length=1)


class FunctionMessage(Strict):
    """Legacy: a function's result (answers the one pending call)."""

    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    Annotated[SystemMessage, Tag("role=system")]
    | Annotated[DeveloperMessage, Tag("role=developer")]
    | Annotated[UserMessage, Tag("role=user")]
    | Annotated[AssistantMessage, Tag("role=assistant")]
    | Annotated[ToolMessage, Tag("role=tool")]
    | Annotated[FunctionMessage, Tag("role=function")],
    Discriminator(
        tag_of("role"),
        custom_error_type="invalid_role",
        custom_error_message=(
            "role must be one of system, developer, user, assistant, tool, function"
        ),
    ),
]


class ClaudeCodeOptions(Strict):
    """Extension: `builtin_tools` true (all the key allows) or a list of names
    offers Claude Code's own tools beside the request's `tools`."""

    builtin_tools: bool | list[str] | None = None


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = Field(None, description="Accepted and ignored.")


class ChatCompletionRequest(Strict):
    """POST /v1/chat/completions. Fields marked "ignored" are accepted but cannot
    reach Claude Code; see http_facade/README.md."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    stop: str | list[str] | None = Field(None, description="Up to 4 stop sequences.")
    user: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None, description="Up to 16 pairs.")
    reasoning_effort: ReasoningEffort | None = None
    session_id: str | None = Field(
        None, max_length=256, description="Extension: continue this session."
    )
    # Accepted and ignored (Claude Code exposes no such knob).
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted and ignored.")
    top_p: float | None = Field(None, ge=0, le=1, description="Accepted and ignored.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    seed: int | None = Field(None, description="Accepted and ignored.")
    parallel_tool_calls: bool | None = Field(None, description="False: one tool call at a time.")
    service_tier: str | None = Field(None, description="Accepted and ignored.")
    store: bool | None = Field(None, description="Accepted and ignored.")
    prompt_cache_key: str | None = Field(None, description="Accepted and ignored.")
    safety_identifier: str | None = Field(None, description="Accepted and ignored.")
    verbosity: Literal["low", "medium", "high"] | None = Field(
        None, description="Accepted and ignored."
    )
    # Accepted only in their neutral form; anything else is "unsupported_parameter".
    n: int | None = Field(None, description="Only 1.")
    logprobs: bool | None = Field(None, description="Only false.")
    top_logprobs: int | None = Field(None, description="Only 0.")
    # Checked by http_facade.tool_calls.chat_tools.
    tools: list[Any] | None = Field(None, description="Function and custom tools.")
    tool_choice: Any = Field(None, description="none, auto, required, or a named tool.")
    functions: list[Any] | None = Field(None, description="Legacy function definitions.")
    function_call: Any = Field(None, description='Legacy: "none", "auto" or {"name": ...}.')
    claude_code: ClaudeCodeOptions | None = Field(None, description="Extension options.")
    logit_bias: dict[str, float] | None = Field(None, description="Only empty.")
    response_format: dict[str, Any] | None = Field(
        None, description="text, json_object or json_schema (http_facade/structured_output.py)."
    )
    modalities: list[str] | None = Field(None, description='Only ["text"].')
    audio: Any = Field(None, description="Only null.")
    prediction: Any = Field(None, description="Only null.")
    web_search_options: Any = Field(
        None,
        description="null, or an object with at most search_context_size: Claude Code's "
        "WebSearch for the turn where the key allows it (the size is not applicable).",
    )

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(v)


# Parameter -> "is this value harmless?". A non-harmless value is refused.
UNSUPPORTED: dict[str, Any] = {
    "n": lambda v: v is None or v == 1,
    "logprobs": lambda v: v is None or v is False,
    "top_logprobs": lambda v: v is None or v == 0,
    "logit_bias": lambda v: v is None or v == {},
    "modalities": lambda v: v is None or v == ["text"],
    "audio": lambda v: v is None,
    "prediction": lambda v: v is None,
    # Claude Code's WebSearch has no user location to set.
    "web_search_options": lambda v: (
        v is None or (isinstance(v, dict) and set(v) <= {"search_context_size"})
    ),
}

# --- responses -----------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class UsageModel(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class ResponseMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="Client tool calls (finish_reason tool_calls)."
    )
    function_call: FunctionCall | None = Field(None, description="Legacy `functions` only.")
    reasoning_content: str | None = Field(None, description="Thinking and agent activity.")
    reasoning: str | None = Field(None, description="Same as reasoning_content.")


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length", "content_filter", "tool_calls", "function_call"] | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[Choice]
    usage: UsageModel | None
    claude_code: ClaudeCodeInfo


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="Fragments: index, id, function.name, then arguments pieces."
    )
    function_call: dict[str, str] | None = Field(None, description="Legacy `functions` only.")


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length", "content_filter", "tool_calls", "function_call"] | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` line of a stream; the stream ends with `data: [DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice]
    usage: UsageModel | None = None
    claude_code: ClaudeCodeInfo | None = Field(None, description="Final chunk only.")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail
