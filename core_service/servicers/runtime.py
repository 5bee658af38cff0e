"""claudecode.v1.RuntimeService: what the front processes need from the core
without credentials of their own: live settings, and a place to record the
requests they refused themselves."""

from __future__ import annotations

import asyncio
import time

import grpc

from claudecode.v1 import runtime_pb2 as pb
from claudecode.v1 import runtime_pb2_grpc
from core_service import request_context, request_log
from core_service.errors import Unauthenticated
from core_service.interceptors import bearer_token
from core_service.keys import KeyStore
from core_service.live_config import LiveConfigStore

MAX_ERROR_CHARS = 2000


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(
        self, config: LiveConfigStore, keys: KeyStore, writer: request_log.RequestLogWriter
    ) -> None:
        self._config = config
        self._keys = keys
        self._writer = writer

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
        token = bearer_token(context.invocation_metadata())
        key = await asyncio.to_thread(self._keys.authenticate, token) if token else None
        if key is None:
            # Only a valid key may add rows: nobody on the network can fill the
            # log with made-up requests. (Requests without a valid key are the
            # core's own 401s, logged where they happen.)
            raise Unauthenticated("Recording a refused request needs a valid API key.")
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
