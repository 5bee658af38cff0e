"""Files API wire models (documentation; the upload is multipart/form-data)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Purpose = Literal["assistants", "user_data", "vision"]


class FileObject(BaseModel):
    """OpenAI's File object."""

    id: str = Field(description="file-<random>")
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: Purpose
    status: Literal["processed"] = Field(description="Deprecated by OpenAI; always processed.")
    status_details: None = None
    expires_at: int | None = Field(
        description="Unix seconds: the earlier of expires_after and the live retention."
    )


class FileList(BaseModel):
    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"]
    deleted: Literal[True]


class FileUpload(BaseModel):
    """The multipart/form-data fields of POST /v1/files, `purpose` before `file`."""

    purpose: Purpose
    file: bytes = Field(json_schema_extra={"format": "binary"})
    expires_after_anchor: Literal["created_at"] | None = Field(None, alias="expires_after[anchor]")
    expires_after_seconds: int | None = Field(
        None, alias="expires_after[seconds]", ge=3600, le=2_592_000
    )
