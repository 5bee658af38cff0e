"""Request logs: filters, AIP-158 paging, and one entry in detail."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from admin_web.web import Request, Response, View, actor, query_string, render
from ccapi_client.redaction import redact_message
from claudecode.v1 import admin_pb2

SINCE = [("", "Any time"), ("1h", "Last hour"), ("24h", "Last 24 hours"),
         ("7d", "Last 7 days"), ("30d", "Last 30 days")]
SINCE_SECONDS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
OUTCOMES = [("", "Any outcome"), ("ok", "OK"), ("error", "Error"), ("cancelled", "Cancelled")]
ENDPOINTS = ["/v1/chat/completions", "/v1/responses", "/v1/models", "/v1/sessions"]


@dataclass
class Filters:
    since: str = ""
    start: str = ""
    end: str = ""
    key_id: str = ""
    model: str = ""
    status: str = ""
    endpoint: str = ""
    outcome: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in
                ("since", "start", "end", "key_id", "model", "status", "endpoint", "outcome")}

    @property
    def active(self) -> bool:
        return any(self.params().values())


def _parse_time(raw: str, name: str, errors: dict[str, str]) -> int:
    if not raw:
        return 0
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        errors[name] = "Enter a date and time, e.g. 2025-01-31T14:00."
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def read_filters(req: Request) -> tuple[Filters, admin_pb2.ListRequestLogsRequest]:
    f = Filters()
    for name in f.params():
        setattr(f, name, (req.get_param(name) or "").strip()[:200])
    request = admin_pb2.ListRequestLogsRequest(
        key_id=f.key_id, model=f.model, endpoint=f.endpoint, page_size=50,
    )
    if f.outcome in dict(OUTCOMES):
        request.outcome = f.outcome
    else:
        f.errors["outcome"] = "Unknown outcome."
    if f.status:
        if f.status.isdigit() and 100 <= int(f.status) <= 599:
            request.status = int(f.status)
        else:
            f.errors["status"] = "Enter an HTTP status such as 200 or 429."
    if f.since in SINCE_SECONDS:
        request.start_time_ms = int((time.time() - SINCE_SECONDS[f.since]) * 1000)
    start = _parse_time(f.start, "start", f.errors)
    end = _parse_time(f.end, "end", f.errors)
    if start:
        request.start_time_ms = max(request.start_time_ms, start)
    if end:
        request.end_time_ms = end
    if start and end and end <= start:
        f.errors["end"] = "The end must be after the start."
    return f, request


class Logs(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        filters, request = read_filters(req)
        token = req.get_param("page_token") or ""
        request.page_token = token
        who = actor(req)
        reply = await self.core.list_request_logs(who, request)
        keys = await self.core.list_keys(who, page_size=500, include_revoked=True)
        base = filters.params()
        render(self.site, req, resp, "logs.html", page_title="Request logs",
               logs=reply.logs, filters=filters, keys=keys.keys, since=SINCE,
               outcomes=OUTCOMES, endpoints=ENDPOINTS, page_token=token,
               next_url=("/logs?" + query_string({**base, "page_token": reply.next_page_token})
                         if reply.next_page_token else ""),
               first_url="/logs?" + query_string(base))


class LogEntry(View):
    async def on_get(self, req: Request, resp: Response, log_id: str) -> None:
        reply = await self.core.get_request_log(actor(req), log_id)
        # Bodies were redacted when stored; the turn's texts get the same policy here.
        redact_message(reply)
        turn = reply.turn if reply.HasField("turn") else None
        results = {r.tool_use_id: r for r in turn.tool_results} if turn else {}
        render(self.site, req, resp, "log.html", page_title=f"Request {reply.log.id}",
               log=reply.log, turn=turn, results=results)
