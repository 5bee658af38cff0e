"""claudecode.v1.RuntimeService: what the front processes need from the core
without credentials of their own: live settings, and a place to record the
requests they refused themselves.

Only the facade (its credential, see `ccapi_client.service_identity`) records
refused requests, and each key's rows come at a bounded rate: the log cannot
be filled with made-up rows by API callers, nor flooded through the facade.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from claudecode.v1 import runtime_pb2 as pb
from claudecode.v1 import runtime_pb2_grpc
from core_service import request_context, request_log
from core_service.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from core_service.interceptors import bearer_token
from core_service.keys import KeyStore
from core_service.live_config import LiveConfigStore
from core_service.rate_buckets import TokenBuckets

MAX_ERROR_CHARS = 2000
# Refused requests recorded per key: a burst, then this many a second. Past
# that a client sending only malformed requests adds no more rows.
REJECTED_BURST = 100
REJECTED_PER_SECOND = 10.0


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(
        self,
        config: LiveConfigStore,
        keys: KeyStore,
        writer: request_log.RequestLogWriter,
        rejected_rows: TokenBuckets | None = None,
    ) -> None:
        self._config = config
        self._keys = keys
        self._writer = writer
        self._rejected_rows = rejected_rows or TokenBuckets(REJECTED_BURST, REJECTED_PER_SECOND)

    async def GetRuntimeConfig(
        self, request: pb.GetRuntimeConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRuntimeConfigResponse:
        snap = self._config.current
        return pb.GetRuntimeConfigResponse(
            version=snap.version,
            cors_origins=list(snap.config.cors_origins),
            max_body_bytes=snap.config.max_body_bytes,
            log_level=snap.config.log_level,
        )

    async def RecordRejectedRequest(
        self, request: pb.RecordRejectedRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordRejectedRequestResponse:
        call = request_context.current()
        if not call.via_facade:
            raise PermissionDenied(
                "Only the HTTP facade records the requests it refused.", reason="not_the_facade"
            )
        token = bearer_token(context.invocation_metadata())
        key = await asyncio.to_thread(self._keys.authenticate, token) if token else None
        if key is None:
            # Rows belong to a valid key. (Requests without one are the
            # core's own 401s, logged where they happen.)
            raise Unauthenticated("Recording a refused request needs a valid API key.")
        wait = self._rejected_rows.take(key.id)
        if wait:
            raise ResourceExhausted(
                "Too many refused requests recorded for this key.", retry_after_seconds=wait
            )
        bodies = self._config.current.config.log_bodies
        self._writer.submit(
            request_log.LogEntry(
                time_ms=int(time.time() * 1000),
                key_id=key.id,
                key_name=key.name,
                endpoint=request.endpoint[:200],
                model=request.model[:100],
                status=request.status,
                outcome="error",
                error=request.error[:MAX_ERROR_CHARS],
                request_id=request.request_id[:100],
                request_body=request.request_body if bodies else "",
                trace_id=request_context.current().trace_id,
            )
        )
        return pb.RecordRejectedRequestResponse()
