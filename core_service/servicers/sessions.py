"""claudecode.v1.SessionService."""

from __future__ import annotations

import asyncio

import grpc

from claudecode.v1 import sessions_pb2 as pb
from claudecode.v1 import sessions_pb2_grpc
from core_service import workspace_reads
from core_service.agent.workspace_layout import WorkspaceLayout
from core_service.errors import InvalidArgument, NotFound
from core_service.interceptors import current_caller
from core_service.servicers import convert
from core_service.store import SessionRow, SessionStore
from core_service.turns.lifecycle import SessionLifecycle
from core_service.turns.registry import ProcessRegistry

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(
        self,
        registry: ProcessRegistry,
        lifecycle: SessionLifecycle,
        store: SessionStore,
        layout: WorkspaceLayout,
    ) -> None:
        self._registry = registry
        self._lifecycle = lifecycle
        self._store = store
        self._layout = layout

    async def _own(self, session_id: str) -> SessionRow:
        row = await asyncio.to_thread(self._store.get_session, current_caller().key_id, session_id)
        if row is None:
            raise NotFound(
                f"No session '{session_id}'.", reason="session_not_found", param="session_id"
            )
        return row

    def _encode(self, row: SessionRow) -> pb.Session:
        return convert.session_to_pb(row, self._registry.live_sessions())

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionsResponse:
        size = request.page_size or DEFAULT_PAGE_SIZE
        if not 0 < size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1..{MAX_PAGE_SIZE}.", param="page_size")
        try:
            offset = int(request.page_token or "0")
        except ValueError:
            raise InvalidArgument("Invalid page_token.", param="page_token") from None
        rows = await asyncio.to_thread(
            self._store.list_sessions, current_caller().key_id, size + 1, offset
        )
        token = str(offset + size) if len(rows) > size else ""
        return pb.ListSessionsResponse(
            sessions=[self._encode(r) for r in rows[:size]], next_page_token=token
        )

    async def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSessionResponse:
        return pb.GetSessionResponse(session=self._encode(await self._own(request.session_id)))

    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSessionResponse:
        row = await self._own(request.session_id)
        await self._lifecycle.delete(row)
        return pb.DeleteSessionResponse(session_id=row.id)

    async def ListSessionFiles(
        self, request: pb.ListSessionFilesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionFilesResponse:
        row = await self._own(request.session_id)
        files = await asyncio.to_thread(
            workspace_reads.list_files, self._layout.workspace_path(row.place.workspace)
        )
        return pb.ListSessionFilesResponse(
            files=[
                pb.WorkspaceFile(path=p, size_bytes=s, modified_at=m, binary=b)
                for p, s, m, b in files
            ]
        )

    async def GetSessionFile(
        self, request: pb.GetSessionFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSessionFileResponse:
        row = await self._own(request.session_id)
        found = await asyncio.to_thread(
            workspace_reads.read_file,
            self._layout.workspace_path(row.place.workspace),
            request.path,
        )
        return pb.GetSessionFileResponse(
            file=pb.WorkspaceFile(
                path=found.path, size_bytes=found.size, modified_at=found.mtime, binary=found.binary
            ),
            content=found.data,
            media_type=found.media_type,
        )
