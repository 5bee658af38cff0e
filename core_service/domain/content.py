"""What a request's messages held, as a stored turn keeps them: roles, parts
(text, image, file, a client tool call or its output), and the client tools
the request offered."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field


class Role(StrEnum):
    UNSPECIFIED = "unspecified"
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    DEVELOPER = "developer"
    TOOL = "tool"


class ClientToolKind(StrEnum):
    UNSPECIFIED = "unspecified"
    FUNCTION = "function"
    CUSTOM = "custom"


# Raw bytes go into the stored JSON as base64.
BYTES_AS_BASE64 = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


@dataclass(frozen=True)
class TextPart:
    text: str = ""
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class Image:
    media_type: str = ""
    data: bytes = b""
    url: str = ""
    type: Literal["image"] = "image"
    __pydantic_config__ = BYTES_AS_BASE64


@dataclass(frozen=True)
class Attachment:
    """A file sent with the message: inline bytes or an uploaded file's id."""

    filename: str = ""
    data: bytes = b""
    file_id: str = ""
    media_type: str = ""
    type: Literal["file"] = "file"
    __pydantic_config__ = BYTES_AS_BASE64


@dataclass(frozen=True)
class ClientToolCall:
    """A call of one of the client's tools (made by the model, or resent as history)."""

    call_id: str = ""
    name: str = ""
    kind: ClientToolKind = ClientToolKind.UNSPECIFIED
    arguments_json: str = ""
    # A custom tool's free-form input.
    input: str = ""
    item_id: str = ""
    namespace: str = ""
    type: Literal["client_tool_call"] = "client_tool_call"


@dataclass(frozen=True)
class ClientToolOutput:
    """The client's result for one call."""

    call_id: str = ""
    output: str = ""
    is_error: bool = False
    item_id: str = ""
    type: Literal["client_tool_output"] = "client_tool_output"


ContentPart = Annotated[
    TextPart | Image | Attachment | ClientToolCall | ClientToolOutput,
    Field(discriminator="type"),
]


@dataclass(frozen=True)
class Message:
    role: Role = Role.UNSPECIFIED
    content: tuple[ContentPart, ...] = ()
    name: str = ""
    # The Responses API's assistant phase ("commentary", "final_answer"); "" when none.
    phase: str = ""


@dataclass(frozen=True)
class CustomToolFormat:
    type: str = ""
    syntax: str = ""
    definition: str = ""


@dataclass(frozen=True)
class ClientTool:
    name: str = ""
    description: str = ""
    parameters_json: str = ""
    strict: bool = False
    kind: ClientToolKind = ClientToolKind.UNSPECIFIED
    format: CustomToolFormat | None = None
    namespace: str = ""
