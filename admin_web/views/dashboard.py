"""The dashboard (usage charts, recent requests) and the live event feed (SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import falcon.asgi

from admin_web import charts
from admin_web.render import fmt_ms, fmt_time_ms, fmt_usd
from admin_web.web import Request, Response, View, actor, render
from ccapi_client.admin import CoreError
from claudecode.v1 import admin_pb2

log = logging.getLogger("ccapi.admin")

RECENT = 10


class Dashboard(View):
    async def on_get(self, req: Request, resp: Response) -> None:
        name = req.get_param("range") or charts.DEFAULT_RANGE
        rng = charts.RANGES_BY_NAME.get(name, charts.RANGES_BY_NAME[charts.DEFAULT_RANGE])
        now_ms = int(time.time() * 1000)
        start, end, starts = charts.window(rng, now_ms)
        who = actor(req)

        def usage(
            bucket: int, group: admin_pb2.UsageGrouping.ValueType
        ) -> Awaitable[admin_pb2.GetUsageResponse]:
            return self.core.get_usage(who, start_time_ms=start, end_time_ms=end,
                                       bucket_seconds=bucket, group_by=group)

        overall, by_model, by_key, recent, key_names = await asyncio.gather(
            usage(rng.bucket_seconds, admin_pb2.USAGE_GROUPING_NONE),
            usage(0, admin_pb2.USAGE_GROUPING_MODEL),
            usage(0, admin_pb2.USAGE_GROUPING_KEY),
            self.core.list_request_logs(who, admin_pb2.ListRequestLogsRequest(page_size=RECENT)),
            self.core.key_names(who),
        )
        render(
            self.site, req, resp, "dashboard.html",
            page_title="Dashboard",
            ranges=charts.RANGES, range=rng,
            totals=overall.totals,
            charts=charts.overview(overall.buckets, overall.totals, rng, starts),
            by_model=charts.breakdown(by_model.buckets, lambda b: b.model or "(none)",
                                      lambda b: ""),
            by_key=charts.breakdown(by_key.buckets,
                                    lambda b: key_names.get(b.key_id, b.key_id or "(none)"),
                                    lambda b: f"/keys/{b.key_id}" if b.key_id else ""),
            recent=recent.logs,
            live=True,
        )


def request_event(log_entry: admin_pb2.RequestLog) -> dict[str, Any]:
    """What the live feed shows of a finished request (plain strings, set as text)."""
    return {
        "id": log_entry.id,
        "time": fmt_time_ms(log_entry.time_ms),
        "key": log_entry.key_name or log_entry.key_id,
        "endpoint": log_entry.endpoint,
        "model": log_entry.model,
        "status": log_entry.status,
        "outcome": log_entry.outcome,
        "latency": fmt_ms(log_entry.latency_ms),
        "tokens": log_entry.usage.input_tokens + log_entry.usage.output_tokens,
        "cost": fmt_usd(log_entry.usage.cost_usd),
        "url": f"/logs/{log_entry.id}",
    }


def encode(event: admin_pb2.WatchEventsResponse) -> falcon.asgi.SSEvent | None:
    kind = event.WhichOneof("event")
    if kind == "request_finished":
        return falcon.asgi.SSEvent(event="request",
                                   text=json.dumps(request_event(event.request_finished)))
    if kind == "key_changed":
        change = event.key_changed
        action = admin_pb2.KeyAction.Name(change.action).removeprefix("KEY_ACTION_").lower()
        return falcon.asgi.SSEvent(event="key", text=json.dumps(
            {"id": change.key.id, "name": change.key.name, "action": action,
             "time": fmt_time_ms(event.time_ms)}))
    if kind == "config_changed":
        change_cfg = event.config_changed
        return falcon.asgi.SSEvent(event="config", text=json.dumps(
            {"version": change_cfg.version, "by": change_cfg.updated_by,
             "time": fmt_time_ms(event.time_ms)}))
    return None


class Events(View):
    """Relays the core's WatchEvents to the browser as server-sent events."""

    async def on_get(self, req: Request, resp: Response) -> None:
        resp.set_header("X-Accel-Buffering", "no")
        resp.sse = self._stream(actor(req))

    async def _stream(self, who: str) -> AsyncIterator[falcon.asgi.SSEvent | None]:
        queue: asyncio.Queue[admin_pb2.WatchEventsResponse | Exception] = asyncio.Queue(1000)

        async def pump() -> None:
            try:
                async for event in self.core.watch(who):
                    queue.put_nowait(event)
            except CoreError as error:
                queue.put_nowait(error)
            except asyncio.QueueFull:
                queue.put_nowait(RuntimeError("too slow"))

        task = asyncio.create_task(pump())
        try:
            yield falcon.asgi.SSEvent(retry=5000, comment="connected")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(),
                                                  self.site.config.keepalive_seconds)
                except TimeoutError:
                    if task.done() and queue.empty():
                        return
                    yield None  # a keep-alive comment; also notices a gone browser
                    continue
                if isinstance(item, Exception):
                    log.info("event watch ended: %s", item)
                    yield falcon.asgi.SSEvent(event="gone", text="{}")
                    return
                sse = encode(item)
                if sse is not None:
                    yield sse
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
