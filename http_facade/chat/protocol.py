"""Chat Completions wire models (pydantic v2): requests validated, responses documented.

Request models forbid unknown fields; the known-harmless OpenAI parameters that
cannot reach Claude Code are declared (so they are type-checked) and ignored.
Parameters the service refuses are checked on the raw body before validation
(see :data:`UNSUPPORTED`), so they get ``code: "unsupported_parameter"``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

INT32_MAX = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- content parts -------------------------------------------------------------------


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(description="An https URL or a data:image/...;base64 URL.")
    detail: Literal["auto", "low", "high"] | None = Field(None, description="Accepted and ignored.")


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: str


def _type_of(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type")
        return f"type={kind}" if isinstance(kind, str) else None
    kind = getattr(value, "type", None)
    return f"type={kind}" if isinstance(kind, str) else None


# Tags are not identifiers, so error locations can drop them (see inputs.param_of).
UserPart = Annotated[
    Annotated[TextPart, Tag("type=text")] | Annotated[ImagePart, Tag("type=image_url")],
    Discriminator(
        _type_of,
        custom_error_type="invalid_part",
        custom_error_message="content part type must be text or image_url",
    ),
]
AssistantPart = Annotated[
    Annotated[TextPart, Tag("type=text")] | Annotated[RefusalPart, Tag("type=refusal")],
    Discriminator(
        _type_of,
        custom_error_type="invalid_part",
        custom_error_message="content part type must be text or refusal",
    ),
]

# --- messages ------------------------------------------------------------------------


class SystemMessage(_Strict):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Strict):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    name: str | None = None
    refusal: str | None = None


def _role_of(value: Any) -> str | None:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return f"role={role}" if isinstance(role, str) else None


Message = Annotated[
    Annotated[SystemMessage, Tag("role=system")]
    | Annotated[DeveloperMessage, Tag("role=developer")]
    | Annotated[UserMessage, Tag("role=user")]
    | Annotated[AssistantMessage, Tag("role=assistant")],
    Discriminator(
        _role_of,
        custom_error_type="invalid_role",
        custom_error_message="role must be one of system, developer, user, assistant",
    ),
]


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = Field(None, description="Accepted and ignored.")


class ChatCompletionRequest(_Strict):
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
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    session_id: str | None = Field(
        None, max_length=256, description="Extension: continue this session."
    )
    # Accepted and ignored (Claude Code exposes no such knob).
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted and ignored.")
    top_p: float | None = Field(None, ge=0, le=1, description="Accepted and ignored.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Ignored.")
    seed: int | None = Field(None, description="Accepted and ignored.")
    parallel_tool_calls: bool | None = Field(None, description="Accepted and ignored.")
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
    tools: list[Any] | None = Field(None, description="Only empty.")
    tool_choice: Any = Field(None, description='Only "none".')
    functions: list[Any] | None = Field(None, description="Only empty.")
    function_call: Any = Field(None, description='Only "none".')
    logit_bias: dict[str, float] | None = Field(None, description="Only empty.")
    response_format: dict[str, Any] | None = Field(None, description='Only {"type": "text"}.')
    modalities: list[str] | None = Field(None, description='Only ["text"].')
    audio: Any = Field(None, description="Only null.")
    prediction: Any = Field(None, description="Only null.")
    web_search_options: Any = Field(None, description="Only null.")

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 metadata pairs")
        for key, value in v.items():
            if len(key) > 64 or len(value) > 512:
                raise ValueError("metadata keys are at most 64 and values 512 characters")
        return v


def _neutral_choice(v: Any) -> bool:
    return v is None or v == "none"


# Parameter -> "is this value harmless?". A non-harmless value is refused.
UNSUPPORTED: dict[str, Any] = {
    "tools": lambda v: v is None or v == [],
    "tool_choice": _neutral_choice,
    "functions": lambda v: v is None or v == [],
    "function_call": _neutral_choice,
    "n": lambda v: v is None or v == 1,
    "logprobs": lambda v: v is None or v is False,
    "top_logprobs": lambda v: v is None or v == 0,
    "logit_bias": lambda v: v is None or v == {},
    "response_format": lambda v: v is None or v == {"type": "text"},
    "modalities": lambda v: v is None or v == ["text"],
    "audio": lambda v: v is None,
    "prediction": lambda v: v is None,
    "web_search_options": lambda v: v is None,
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


class FileInfo(BaseModel):
    path: str
    kind: Literal["created", "modified", "deleted", "unspecified"]
    size_bytes: int
    binary: bool
    diff: str | None = None
    diff_truncated: bool = False


class ClaudeCodeInfo(BaseModel):
    """Extension: what Claude Code did in the turn."""

    session_id: str
    turn_id: str
    files: list[FileInfo]
    cost_usd: float | None = None
    num_turns: int | None = None


class ResponseMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    reasoning_content: str | None = Field(None, description="Thinking and agent activity.")
    reasoning: str | None = Field(None, description="Same as reasoning_content.")


class Choice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length", "content_filter"] | None
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


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length", "content_filter"] | None
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
