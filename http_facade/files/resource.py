"""/v1/files over FileService: OpenAI's Files API, scoped by the core to the
caller's key. Uploads and downloads stream in chunks of at most 1 MiB, so a
file of any allowed size fits every gRPC message cap; the size limit is the
core's live max_file_bytes (the JSON body limit does not apply here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import falcon
import falcon.asgi
import grpc.aio
from falcon.asgi.multipart import BodyPart

from ccapi_client.metadata import UPLOAD_REFUSED_HEADER
from claudecode.v1 import files_pb2, files_pb2_grpc
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import ApiError, from_rpc_error, invalid_request

CHUNK_BYTES = 1024 * 1024
LIST_MAX = 10_000
EXPIRES_ANCHOR = "expires_after[anchor]"
EXPIRES_SECONDS = "expires_after[seconds]"


def file_dict(f: files_pb2.StoredFile) -> dict[str, Any]:
    """OpenAI's File object."""
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        # Deprecated by OpenAI but still in the object; stored means processed.
        "status": "processed",
        "status_details": None,
        "expires_at": f.expires_at or None,
    }


def _metadata(req: falcon.asgi.Request) -> tuple[tuple[str, str], ...]:
    md = auth_metadata(req.get_header("Authorization"), req.context.request_id, req.uri_template)
    return tuple(md)


class _Base:
    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def call(self, req: falcon.asgi.Request, method: str, request: Any) -> Any:
        rpc = getattr(self.core.files(), method)
        try:
            return await rpc(request, metadata=_metadata(req), timeout=self.core.unary_timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, started=False) from None


async def _upload(
    stub: files_pb2_grpc.FileServiceStub,
    messages: AsyncGenerator[files_pb2.UploadFileRequest, None],
    metadata: tuple[tuple[str, str], ...],
) -> files_pb2.UploadFileResponse:
    """Writes the upload message by message, and stops at the core's
    refusal header to half-close and read the status: a status that lands
    mid-write would reach us as INTERNAL (grpc/grpc#36066, see files.proto)."""
    call = stub.UploadFile(metadata=metadata)
    headers = asyncio.ensure_future(call.initial_metadata())
    try:
        async with aclosing(messages) as stream:
            async for message in stream:
                if headers.done() and _refused(headers.result()):
                    break
                await call.write(message)
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass  # the call has ended: its status is what awaiting it raises
    finally:
        headers.cancel()
    got: files_pb2.UploadFileResponse = await call
    return got


def _refused(headers: Any) -> bool:
    return any(key == UPLOAD_REFUSED_HEADER for key, _ in headers or ())


class _Form:
    """The upload's form fields before the file part (OpenAI's SDKs and curl
    send them first); the file part itself is streamed, never buffered."""

    def __init__(self) -> None:
        self.purpose: str | None = None
        self.anchor: str | None = None
        self.seconds = 0

    async def take(self, part: BodyPart) -> None:
        text = await part.get_text()
        if text is None:
            raise invalid_request(f"The form field '{part.name}' must be text.", part.name)
        if part.name == "purpose":
            self.purpose = text
        elif part.name == EXPIRES_ANCHOR:
            if text != "created_at":
                raise invalid_request(
                    "expires_after.anchor must be 'created_at'.", "expires_after.anchor"
                )
            self.anchor = text
        elif part.name == EXPIRES_SECONDS:
            if not text.strip().isdigit():
                raise invalid_request(
                    "expires_after.seconds must be an integer.", "expires_after.seconds"
                )
            self.seconds = int(text)
        else:
            raise invalid_request(
                f"Unrecognized request argument supplied: {part.name}", part.name or None
            )

    def check(self) -> str:
        if self.purpose is None:
            raise invalid_request(
                "Missing required parameter: 'purpose' (send it before the 'file' field).",
                "purpose",
                "missing_required_parameter",
            )
        if self.seconds and self.anchor is None:
            raise invalid_request(
                "expires_after needs both anchor and seconds.", "expires_after.anchor"
            )
        return self.purpose


class Files(_Base):
    """POST /v1/files (multipart upload) and GET /v1/files (list)."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if (req.content_type or "").split(";")[0].strip().lower() != falcon.MEDIA_MULTIPART:
            raise invalid_request(
                f"Invalid Content-Type header ({req.content_type or 'none'}), expected "
                "multipart/form-data."
            )
        form = await req.get_media()
        parts: AsyncIterator[BodyPart] = form.__aiter__()
        fields = _Form()
        file_part: BodyPart | None = None
        async for part in parts:
            if part.name == "file":
                file_part = part
                break
            await fields.take(part)
        if file_part is None:
            raise invalid_request(
                "Missing required parameter: 'file'.", "file", "missing_required_parameter"
            )
        purpose = fields.check()
        # A problem found while streaming: the stream ends without its `end`
        # message (so the core keeps nothing) and this is what the client sees.
        problem: list[Exception] = []

        async def messages() -> AsyncGenerator[files_pb2.UploadFileRequest, None]:
            yield files_pb2.UploadFileRequest(
                start=files_pb2.UploadFileStart(
                    filename=file_part.filename or "",
                    purpose=purpose,
                    expires_after_seconds=fields.seconds,
                    media_type=file_part.content_type or "",
                    declared_body_bytes=req.content_length or 0,
                )
            )
            total = 0
            try:
                while chunk := await file_part.stream.read(CHUNK_BYTES):
                    total += len(chunk)
                    yield files_pb2.UploadFileRequest(chunk=chunk)
                async for extra in parts:
                    problem.append(
                        invalid_request(
                            f"Send 'file' as the last form field (got '{extra.name}' after it).",
                            extra.name or None,
                        )
                    )
                    return
            except Exception as exc:  # a malformed or cut-off body
                problem.append(exc)
                return
            yield files_pb2.UploadFileRequest(end=files_pb2.UploadFileEnd(total_bytes=total))

        # No deadline: a large upload from a slow client takes as long as it takes.
        try:
            got = await _upload(self.core.files(), messages(), _metadata(req))
        except grpc.aio.AioRpcError as err:
            if problem:
                raise problem[0] from None
            raise from_rpc_error(err, started=False) from None
        if problem:  # pragma: no cover - the core refuses an upload without `end`
            raise problem[0]
        resp.media = file_dict(got.file)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raw = req.get_param("limit")
        limit = 0
        if raw is not None:
            limit = int(raw) if raw.isdigit() else -1
            if not 1 <= limit <= LIST_MAX:
                raise invalid_request(
                    f"'limit' must be an integer from 1 to {LIST_MAX}.", "limit", "invalid_value"
                )
        got: files_pb2.ListFilesResponse = await self.call(
            req,
            "ListFiles",
            files_pb2.ListFilesRequest(
                purpose=req.get_param("purpose") or "",
                limit=limit,
                order=req.get_param("order") or "",
                after=req.get_param("after") or "",
            ),
        )
        data = [file_dict(f) for f in got.files]
        resp.media = {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": got.has_more,
        }


class File(_Base):
    """GET and DELETE /v1/files/{file_id}."""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, file_id: str
    ) -> None:
        got: files_pb2.GetFileResponse = await self.call(
            req, "GetFile", files_pb2.GetFileRequest(file_id=file_id)
        )
        resp.media = file_dict(got.file)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, file_id: str
    ) -> None:
        got: files_pb2.DeleteFileResponse = await self.call(
            req, "DeleteFile", files_pb2.DeleteFileRequest(file_id=file_id)
        )
        resp.media = {"id": got.file_id, "object": "file", "deleted": True}


class FileContent:
    """GET /v1/files/{file_id}/content: the bytes, streamed as they are read."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, file_id: str
    ) -> None:
        call = self.core.files().GetFileContent(
            files_pb2.GetFileContentRequest(file_id=file_id), metadata=_metadata(req)
        )
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, started=False) from None
        if not isinstance(first, files_pb2.GetFileContentResponse):
            raise ApiError(500, "The server had an error.", type="server_error")

        async def body() -> AsyncIterator[bytes]:
            try:
                if first.chunk:
                    yield first.chunk
                # grpc.aio forbids mixing read() with `async for` on one call.
                while (message := await call.read()) is not grpc.aio.EOF:
                    yield message.chunk
            finally:
                call.cancel()

        resp.content_type = "application/octet-stream"
        resp.content_length = first.file.bytes
        name = first.file.filename or "file"
        # Never rendered by a browser on the API's origin.
        resp.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        resp.stream = body()
