"""The facade's only way to the core: grpc.aio stubs on a lazily made channel.

The channel is created on first use inside the worker process (after
gunicorn's fork) and on the running event loop, never at import time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from claudecode.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    sessions_pb2_grpc,
)

Metadata = Sequence[tuple[str, str]]

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # A restarted core is found within a second or two, not after gRPC's
    # default reconnect backoff (up to two minutes) has run out.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def auth_metadata(
    authorization: str | None, request_id: str | None = None, endpoint: str | None = None
) -> list[tuple[str, str]]:
    """The client's Authorization header as gRPC metadata, plus the request id
    and the public endpoint (the route template), which the core's request
    log records."""
    md: list[tuple[str, str]] = []
    if authorization:
        md.append(("authorization", authorization.strip()))
    if request_id:
        md.append(("x-request-id", request_id))
    if endpoint:
        md.append(("x-ccapi-endpoint", endpoint))
    return md


class CoreClient:
    """Stubs for AgentService, ModelService and grpc.health.v1 on one channel."""

    def __init__(self, addr: str, unary_timeout: float = 10.0) -> None:
        self.addr = addr
        self.unary_timeout = unary_timeout
        self._channel: grpc.aio.Channel | None = None
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        if self._channel is None or self._pid != os.getpid() or self._loop is not loop:
            self._channel = grpc.aio.insecure_channel(self.addr, options=_CHANNEL_OPTIONS)
            self._pid = os.getpid()
            self._loop = loop
        return self._channel

    def run_turn(self, request: agent_pb2.RunTurnRequest, metadata: Metadata) -> Any:
        """Starts RunTurn; returns the grpc.aio stream call (iterate, or .read())."""
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        return stub.RunTurn(request, metadata=tuple(metadata))

    async def get_turn(self, turn_id: str, metadata: Metadata) -> agent_pb2.Turn:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        resp: agent_pb2.GetTurnResponse = await stub.GetTurn(
            agent_pb2.GetTurnRequest(turn_id=turn_id),
            metadata=tuple(metadata),
            timeout=self.unary_timeout,
        )
        return resp.turn

    async def cancel_turn(self, turn_id: str, metadata: Metadata) -> agent_pb2.Turn:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        # The core waits (a few seconds) for the turn to stop before answering.
        resp: agent_pb2.CancelTurnResponse = await stub.CancelTurn(
            agent_pb2.CancelTurnRequest(turn_id=turn_id),
            metadata=tuple(metadata),
            timeout=self.unary_timeout + 10,
        )
        return resp.turn

    async def delete_turn(self, turn_id: str, metadata: Metadata) -> None:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        await stub.DeleteTurn(
            agent_pb2.DeleteTurnRequest(turn_id=turn_id),
            metadata=tuple(metadata),
            timeout=self.unary_timeout,
        )

    def sessions(self) -> sessions_pb2_grpc.SessionServiceStub:
        """The SessionService stub; calls pass ``timeout=self.unary_timeout``."""
        return sessions_pb2_grpc.SessionServiceStub(self._ensure())

    async def list_models(self, metadata: Metadata) -> models_pb2.ListModelsResponse:
        stub = models_pb2_grpc.ModelServiceStub(self._ensure())
        resp: models_pb2.ListModelsResponse = await stub.ListModels(
            models_pb2.ListModelsRequest(), metadata=tuple(metadata), timeout=self.unary_timeout
        )
        return resp

    async def get_model(self, name: str, metadata: Metadata) -> models_pb2.GetModelResponse:
        stub = models_pb2_grpc.ModelServiceStub(self._ensure())
        resp: models_pb2.GetModelResponse = await stub.GetModel(
            models_pb2.GetModelRequest(name=name),
            metadata=tuple(metadata),
            timeout=self.unary_timeout,
        )
        return resp

    async def runtime_config(self, timeout: float = 2.0) -> runtime_pb2.GetRuntimeConfigResponse:
        """The live settings the facade applies (no credentials needed)."""
        stub = runtime_pb2_grpc.RuntimeServiceStub(self._ensure())
        resp: runtime_pb2.GetRuntimeConfigResponse = await stub.GetRuntimeConfig(
            runtime_pb2.GetRuntimeConfigRequest(), timeout=timeout
        )
        return resp

    async def record_rejected(
        self, record: runtime_pb2.RecordRejectedRequestRequest, metadata: Metadata, timeout: float
    ) -> None:
        """Logs, in the core, a request the facade refused itself."""
        stub = runtime_pb2_grpc.RuntimeServiceStub(self._ensure())
        await stub.RecordRejectedRequest(record, metadata=tuple(metadata), timeout=timeout)

    async def health(self, timeout: float = 2.0) -> bool:
        """True when the core answers SERVING for the overall service ""."""
        stub = health_pb2_grpc.HealthStub(self._ensure())
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        if self._channel is not None and self._pid == os.getpid():
            await self._channel.close()
        self._channel = None
