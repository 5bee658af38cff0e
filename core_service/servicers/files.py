"""claudecode.v1.FileService: decodes, calls the FileStore, encodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from claudecode.v1 import files_pb2 as pb
from claudecode.v1 import files_pb2_grpc
from core_service.errors import InvalidArgument
from core_service.file_store import FileStore, ListQuery, StoredFile, Upload, UploadStart
from core_service.interceptors import current_caller


def encode_file(stored: StoredFile) -> pb.StoredFile:
    return pb.StoredFile(
        id=stored.id,
        filename=stored.filename,
        purpose=stored.purpose,
        bytes=stored.bytes,
        created_at=stored.created_at,
        expires_at=stored.expires_at,
        sha256=stored.sha256,
        media_type=stored.media_type,
    )


def decode_start(start: pb.UploadFileStart) -> UploadStart:
    return UploadStart(
        filename=start.filename,
        purpose=start.purpose,
        expires_after_seconds=start.expires_after_seconds,
        media_type=start.media_type,
        declared_body_bytes=start.declared_body_bytes,
    )


class FileServicer(files_pb2_grpc.FileServiceServicer):
    def __init__(self, files: FileStore) -> None:
        self._files = files

    async def UploadFile(
        self,
        request_iterator: AsyncIterator[pb.UploadFileRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.UploadFileResponse:
        key_id = current_caller().key_id
        upload: Upload | None = None
        try:
            async for message in request_iterator:
                part = message.WhichOneof("part")
                if part == "start" and upload is None:
                    upload = await asyncio.to_thread(
                        self._files.begin, key_id, decode_start(message.start)
                    )
                elif part == "chunk" and upload is not None:
                    await asyncio.to_thread(upload.write, message.chunk)
                elif part == "end" and upload is not None:
                    stored = await asyncio.to_thread(upload.finish, message.end.total_bytes)
                    upload = None
                    return pb.UploadFileResponse(file=encode_file(stored))
                else:
                    raise InvalidArgument(
                        "An upload is one start message, chunks, then one end message."
                    )
            raise InvalidArgument("The upload ended before its end message.", param="file")
        finally:
            # Cancelled, cut short or refused: nothing stays behind.
            if upload is not None:
                await asyncio.to_thread(upload.discard)

    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFilesResponse:
        query = ListQuery(
            purpose=request.purpose, limit=request.limit, order=request.order, after=request.after
        )
        found, more = await asyncio.to_thread(self._files.list, current_caller().key_id, query)
        return pb.ListFilesResponse(files=[encode_file(f) for f in found], has_more=more)

    async def GetFile(
        self, request: pb.GetFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFileResponse:
        stored = await asyncio.to_thread(self._files.get, current_caller().key_id, request.file_id)
        return pb.GetFileResponse(file=encode_file(stored))

    async def GetFileContent(
        self, request: pb.GetFileContentRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetFileContentResponse]:
        stored, handle = await asyncio.to_thread(
            self._files.open_content, current_caller().key_id, request.file_id
        )
        try:
            first: pb.GetFileContentResponse | None = pb.GetFileContentResponse(
                file=encode_file(stored)
            )
            chunks = FileStore.read_chunks(handle)
            while chunk := await asyncio.to_thread(next, chunks, b""):
                if first is not None:
                    first.chunk = chunk
                    yield first
                    first = None
                else:
                    yield pb.GetFileContentResponse(chunk=chunk)
            if first is not None:  # an empty file: the metadata alone
                yield first
        finally:
            handle.close()

    async def DeleteFile(
        self, request: pb.DeleteFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteFileResponse:
        file_id = await asyncio.to_thread(
            self._files.delete, current_caller().key_id, request.file_id
        )
        return pb.DeleteFileResponse(file_id=file_id)
