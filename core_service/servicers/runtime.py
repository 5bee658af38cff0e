"""claudecode.v1.RuntimeService: live settings the front processes apply."""

from __future__ import annotations

import grpc

from claudecode.v1 import runtime_pb2 as pb
from claudecode.v1 import runtime_pb2_grpc
from core_service.live_config import LiveConfigStore


class RuntimeServicer(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, config: LiveConfigStore) -> None:
        self._config = config

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
