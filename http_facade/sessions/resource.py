"""/v1/sessions over SessionService; the core scopes everything to the caller's key
and refuses paths outside the workspace (``..``, absolute, symlinks out)."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any
from urllib.parse import quote

import falcon.asgi
import grpc.aio

from claudecode.v1 import sessions_pb2
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import from_rpc_error, invalid_request

PAGE_MAX = 200


def session_dict(s: sessions_pb2.Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "object": "session",
        "model": s.model,
        "created_at": s.created_at,
        "last_active_at": s.last_active_at,
        "turn_count": s.turn_count,
        "last_turn_id": s.last_turn_id or None,
        "last_response_id": f"resp_{s.last_turn_id}" if s.last_turn_id else None,
        "forked_from": s.forked_from or None,
        "usage": {
            "input_tokens": s.usage.input_tokens,
            "output_tokens": s.usage.output_tokens,
            "cost_usd": s.usage.cost_usd,
        },
        "live": s.live,
    }


def file_dict(f: sessions_pb2.WorkspaceFile) -> dict[str, Any]:
    return {
        "path": f.path,
        "object": "session.file",
        "size_bytes": f.size_bytes,
        "modified_at": f.modified_at,
        "binary": f.binary,
    }


class _Base:
    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def call(self, req: falcon.asgi.Request, method: str, request: Any) -> Any:
        md = auth_metadata(
            req.get_header("Authorization"), req.context.request_id, req.uri_template
        )
        rpc = getattr(self.core.sessions(), method)
        try:
            return await rpc(
                request, metadata=self.core.call_metadata(md), timeout=self.core.unary_timeout
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, started=False) from None


class Sessions(_Base):
    """GET /v1/sessions: the caller's sessions, most recently active first."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raw = req.get_param("limit")
        limit = 0
        if raw:
            limit = int(raw) if raw.isdigit() else -1
            if not 1 <= limit <= PAGE_MAX:
                raise invalid_request(
                    f"'limit' must be an integer from 1 to {PAGE_MAX}.", "limit", "invalid_value"
                )
        got: sessions_pb2.ListSessionsResponse = await self.call(
            req,
            "ListSessions",
            sessions_pb2.ListSessionsRequest(
                page_size=limit, page_token=req.get_param("page_token") or ""
            ),
        )
        resp.media = {
            "object": "list",
            "data": [session_dict(s) for s in got.sessions],
            "has_more": bool(got.next_page_token),
            "next_page_token": got.next_page_token or None,
        }


class Session(_Base):
    """GET and DELETE /v1/sessions/{session_id}."""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str
    ) -> None:
        got: sessions_pb2.GetSessionResponse = await self.call(
            req, "GetSession", sessions_pb2.GetSessionRequest(session_id=session_id)
        )
        resp.media = session_dict(got.session)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str
    ) -> None:
        got: sessions_pb2.DeleteSessionResponse = await self.call(
            req, "DeleteSession", sessions_pb2.DeleteSessionRequest(session_id=session_id)
        )
        resp.media = {"id": got.session_id, "object": "session.deleted", "deleted": True}


class SessionFiles(_Base):
    """GET /v1/sessions/{session_id}/files: the workspace's files, sorted by path."""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str
    ) -> None:
        got: sessions_pb2.ListSessionFilesResponse = await self.call(
            req, "ListSessionFiles", sessions_pb2.ListSessionFilesRequest(session_id=session_id)
        )
        resp.media = {"object": "list", "data": [file_dict(f) for f in got.files]}


class SessionFile(_Base):
    """GET /v1/sessions/{session_id}/files/{path}: one file's bytes.

    The path arrives percent-decoded and may contain slashes; the core alone
    decides what is inside the workspace.
    """

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_id: str, path: str
    ) -> None:
        if not path or "\x00" in path:
            raise invalid_request("The file path is empty or invalid.", "path", "invalid_value")
        got: sessions_pb2.GetSessionFileResponse = await self.call(
            req,
            "GetSessionFile",
            sessions_pb2.GetSessionFileRequest(session_id=session_id, path=path),
        )
        resp.data = got.content
        resp.content_type = got.media_type or "application/octet-stream"
        name = got.file.path.rsplit("/", 1)[-1] or "file"
        # Never rendered by a browser on the API's origin.
        resp.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        resp.set_header("X-File-Path", quote(got.file.path, safe="/"))
        resp.set_header("Last-Modified", formatdate(got.file.modified_at, usegmt=True))
