"""Sessions of every key: list, transcript, files."""

from __future__ import annotations

from admin_web.web import Request, Response, View, actor, query_string, render
from claudecode.v1 import admin_pb2

ROLES = {1: "user", 2: "assistant", 3: "system", 4: "developer"}


class Sessions(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        key_id = (req.get_param("key_id") or "").strip()[:100]
        token = req.get_param("page_token") or ""
        who = actor(req)
        reply = await self.core.call("ListAllSessions", admin_pb2.ListAllSessionsRequest(
            key_id=key_id, page_size=50, page_token=token), who)
        keys = await self.core.call("ListKeys", admin_pb2.ListKeysRequest(
            page_size=500, include_revoked=True), who)
        render(self.site, req, resp, "sessions.html", page_title="Sessions",
               sessions=reply.sessions, key_id=key_id, keys=keys.keys,
               key_names={k.id: k.name for k in keys.keys}, page_token=token,
               next_url=("/sessions?" + query_string(
                   {"key_id": key_id, "page_token": reply.next_page_token})
                   if reply.next_page_token else ""),
               first_url="/sessions?" + query_string({"key_id": key_id}))


class SessionDetail(View):
    async def on_get(self, req: Request, resp: Response, session_id: str) -> None:
        reply = await self.core.call("GetSessionDetail", admin_pb2.GetSessionDetailRequest(
            session_id=session_id), actor(req))
        render(self.site, req, resp, "session.html", page_title=f"Session {session_id}",
               detail=reply, s=reply.session.session, key_id=reply.session.key_id,
               turns=reply.turns, files=reply.files, roles=ROLES)
