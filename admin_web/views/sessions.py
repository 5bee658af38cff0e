"""Sessions of every key: list, transcript, files."""

from __future__ import annotations

from admin_web.web import Request, Response, View, actor, query_string, render
from ccapi_client.redaction import redact_message

ROLES = {1: "user", 2: "assistant", 3: "system", 4: "developer"}


class Sessions(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        key_id = (req.get_param("key_id") or "").strip()[:100]
        token = req.get_param("page_token") or ""
        who = actor(req)
        reply = await self.core.list_all_sessions(who, key_id=key_id, page_size=50,
                                                  page_token=token)
        keys = await self.core.list_keys(who, page_size=500, include_revoked=True)
        render(self.site, req, resp, "sessions.html", page_title="Sessions",
               sessions=reply.sessions, key_id=key_id, keys=keys.keys,
               key_names={k.id: k.name for k in keys.keys}, page_token=token,
               next_url=("/sessions?" + query_string(
                   {"key_id": key_id, "page_token": reply.next_page_token})
                   if reply.next_page_token else ""),
               first_url="/sessions?" + query_string({"key_id": key_id}))


class SessionDetail(View):
    async def on_get(self, req: Request, resp: Response, session_id: str) -> None:
        reply = await self.core.get_session_detail(actor(req), session_id)
        # The transcript gets the policy the request log's bodies get, for every role.
        redact_message(reply)
        render(self.site, req, resp, "session.html", page_title=f"Session {session_id}",
               detail=reply, s=reply.session.session, key_id=reply.session.key_id,
               turns=reply.turns, files=reply.files, roles=ROLES,
               # Attached by clients, listed apart from what the agent made.
               attachments=reply.attachments,
               attached_names={a.filename for a in reply.attachments})
