"""Requests the facade refuses itself still get their row in the core's
request log: the refusal is reported to the core in the background, never
delaying or failing the response."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import falcon.asgi
import grpc

from claudecode.v1 import runtime_pb2
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import ApiError

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 64 * 1024
REPORT_TIMEOUT_SECONDS = 2.0
# Reports on their way at once; past this a refusal goes unrecorded rather
# than piling up tasks in the worker (the core bounds each key's rows too).
MAX_PENDING_REPORTS = 100


class RejectionReporter:
    def __init__(self, core: CoreClient) -> None:
        self._core = core
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, req: falcon.asgi.Request, err: ApiError) -> None:
        if not req.path.startswith("/v1/"):
            return  # probes and the OpenAPI document are not API requests
        if len(self._tasks) >= MAX_PENDING_REPORTS:
            log.debug("too many refused requests being recorded; not recording this one")
            return
        raw: bytes = getattr(req.context, "raw_body", b"")
        body = raw[:MAX_BODY_CHARS].decode("utf-8", "replace")
        record = runtime_pb2.RecordRejectedRequestRequest(
            endpoint=req.uri_template or req.path,
            status=err.status,
            error=err.message,
            request_id=getattr(req.context, "request_id", "") or "",
            request_body=body,
            model=_model_of(raw),
        )
        md = auth_metadata(req.get_header("Authorization"))
        task = asyncio.create_task(self._send(record, md))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, record: runtime_pb2.RecordRejectedRequestRequest, md: list[tuple[str, str]]
    ) -> None:
        try:
            await self._core.record_rejected(record, md, REPORT_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            log.debug("could not record a rejected request: %s", error.code())


def _model_of(raw: bytes) -> str:
    try:
        body: Any = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return ""
    model = body.get("model") if isinstance(body, dict) else None
    return model[:100] if isinstance(model, str) else ""
