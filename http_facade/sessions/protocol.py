"""Wire models of the /v1/sessions extension (documentation; responses only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SessionUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cost_usd: float


class SessionObject(BaseModel):
    """A conversation: a Claude Code session with its workspace."""

    id: str
    object: Literal["session"]
    model: str
    created_at: int
    last_active_at: int
    turn_count: int
    last_turn_id: str | None
    last_response_id: str | None = Field(
        description="resp_<last_turn_id>, usable as previous_response_id."
    )
    forked_from: str | None
    usage: SessionUsage
    live: bool = Field(description="True while a Claude Code process is attached.")


class SessionList(BaseModel):
    object: Literal["list"]
    data: list[SessionObject]
    has_more: bool
    next_page_token: str | None = Field(description="Pass as page_token for the next page.")


class SessionDeleted(BaseModel):
    id: str
    object: Literal["session.deleted"]
    deleted: Literal[True]


class SessionFile(BaseModel):
    path: str = Field(description="Relative to the workspace, '/' separators.")
    object: Literal["session.file"]
    size_bytes: int
    modified_at: int
    binary: bool


class SessionFileList(BaseModel):
    object: Literal["list"]
    data: list[SessionFile]
