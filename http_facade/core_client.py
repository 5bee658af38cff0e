"""The facade's only way to the core: grpc.aio stubs on a lazily made channel
(:class:`ccapi_client.channel.LazyChannel`: made on first use in the worker,
after gunicorn's fork).

Every call carries the facade's credential (`ccapi_client.service_identity`)
and the HTTP client's address: with the credential the core believes the
endpoint, address and stream flag the facade names, and lets it record the
requests it refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ccapi_client import telemetry
from ccapi_client.channel import MAX_MESSAGE_BYTES, LazyChannel
from ccapi_client.metadata import (
    AUTHORIZATION,
    CLIENT_ADDRESS_HEADER,
    ENDPOINT_HEADER,
    FACADE_TOKEN_HEADER,
    REQUEST_ID_HEADER,
)
from claudecode.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    files_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    sessions_pb2_grpc,
)
from http_facade import client_address
from http_facade.errors import ApiError

Metadata = Sequence[tuple[str, str]]


def auth_metadata(
    authorization: str | None, request_id: str | None = None, endpoint: str | None = None
) -> list[tuple[str, str]]:
    """The client's Authorization header as gRPC metadata, plus the request id
    and the public endpoint (the route template), which the core's request
    log records."""
    md: list[tuple[str, str]] = []
    if authorization:
        md.append((AUTHORIZATION, authorization.strip()))
    if request_id:
        md.append((REQUEST_ID_HEADER, request_id))
    if endpoint:
        md.append((ENDPOINT_HEADER, endpoint))
    telemetry.inject(md)  # traceparent: the core's spans join the request's trace
    return md


class CoreClient:
    """Stubs for AgentService, ModelService and grpc.health.v1 on one channel."""

    def __init__(self, addr: str, unary_timeout: float = 10.0, credential: str = "") -> None:
        self.addr = addr
        self.unary_timeout = unary_timeout
        self._credential = credential
        self._channel = LazyChannel(addr)

    def _ensure(self) -> grpc.aio.Channel:
        return self._channel.get()

    def call_metadata(self, metadata: Metadata = ()) -> tuple[tuple[str, str], ...]:
        """A call's metadata plus the facade's own: its credential, the client's address."""
        md = list(metadata)
        if self._credential:
            md.append((FACADE_TOKEN_HEADER, self._credential))
        address = client_address.CURRENT.get()
        if address:
            md.append((CLIENT_ADDRESS_HEADER, address))
        return tuple(md)

    def run_turn(self, request: agent_pb2.RunTurnRequest, metadata: Metadata) -> Any:
        """Starts RunTurn; returns the grpc.aio stream call (iterate, or .read()).

        A request gRPC would refuse for its size is a 413 here, before the call.
        """
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            raise ApiError(
                413,
                f"The request is {size} bytes once encoded, more than the {MAX_MESSAGE_BYTES} "
                "bytes the service passes on; send smaller inputs (e.g. images by URL).",
                code="request_too_large",
            )
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        return stub.RunTurn(request, metadata=self.call_metadata(metadata))

    async def start_background_turn(
        self, request: agent_pb2.RunTurnRequest, metadata: Metadata
    ) -> tuple[agent_pb2.Turn, Metadata]:
        """Starts a background turn; its accepted Turn and the call's initial
        metadata (rate-limit headers)."""
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        call = stub.StartBackgroundTurn(
            agent_pb2.StartBackgroundTurnRequest(turn=request),
            metadata=self.call_metadata(metadata),
            # Accepted once it waits in the queue or runs; starting a process is part of it.
            timeout=self.unary_timeout + 60,
        )
        resp: agent_pb2.StartBackgroundTurnResponse = await call
        return resp.turn, tuple(await call.initial_metadata() or ())

    def stream_turn_events(self, turn_id: str, start_index: int, metadata: Metadata) -> Any:
        """StreamTurnEvents; returns the grpc.aio stream call (.read())."""
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        return stub.StreamTurnEvents(
            agent_pb2.StreamTurnEventsRequest(turn_id=turn_id, start_index=start_index),
            metadata=self.call_metadata(metadata),
        )

    async def get_turn(self, turn_id: str, metadata: Metadata) -> agent_pb2.Turn:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        resp: agent_pb2.GetTurnResponse = await stub.GetTurn(
            agent_pb2.GetTurnRequest(turn_id=turn_id),
            metadata=self.call_metadata(metadata),
            timeout=self.unary_timeout,
        )
        return resp.turn

    async def compact_turn(
        self, request: agent_pb2.CompactTurnRequest, metadata: Metadata
    ) -> agent_pb2.CompactTurnResponse:
        # No deadline of its own: a compaction is a model call, bounded like a turn's.
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        resp: agent_pb2.CompactTurnResponse = await stub.CompactTurn(
            request, metadata=self.call_metadata(metadata)
        )
        return resp

    async def cancel_turn(self, turn_id: str, metadata: Metadata) -> agent_pb2.Turn:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        # The core waits (a few seconds) for the turn to stop before answering.
        resp: agent_pb2.CancelTurnResponse = await stub.CancelTurn(
            agent_pb2.CancelTurnRequest(turn_id=turn_id),
            metadata=self.call_metadata(metadata),
            timeout=self.unary_timeout + 10,
        )
        return resp.turn

    async def delete_turn(self, turn_id: str, metadata: Metadata) -> None:
        stub = agent_pb2_grpc.AgentServiceStub(self._ensure())
        await stub.DeleteTurn(
            agent_pb2.DeleteTurnRequest(turn_id=turn_id),
            metadata=self.call_metadata(metadata),
            timeout=self.unary_timeout,
        )

    def sessions(self) -> sessions_pb2_grpc.SessionServiceStub:
        """The SessionService stub; calls pass ``timeout=self.unary_timeout``."""
        return sessions_pb2_grpc.SessionServiceStub(self._ensure())

    def files(self) -> files_pb2_grpc.FileServiceStub:
        """The FileService stub; uploads and downloads stream in chunks."""
        return files_pb2_grpc.FileServiceStub(self._ensure())

    async def list_models(self, metadata: Metadata) -> models_pb2.ListModelsResponse:
        stub = models_pb2_grpc.ModelServiceStub(self._ensure())
        resp: models_pb2.ListModelsResponse = await stub.ListModels(
            models_pb2.ListModelsRequest(),
            metadata=self.call_metadata(metadata),
            timeout=self.unary_timeout,
        )
        return resp

    async def get_model(self, name: str, metadata: Metadata) -> models_pb2.GetModelResponse:
        stub = models_pb2_grpc.ModelServiceStub(self._ensure())
        resp: models_pb2.GetModelResponse = await stub.GetModel(
            models_pb2.GetModelRequest(name=name),
            metadata=self.call_metadata(metadata),
            timeout=self.unary_timeout,
        )
        return resp

    async def runtime_config(self, timeout: float = 2.0) -> runtime_pb2.GetRuntimeConfigResponse:
        """The live settings the facade applies (no credentials needed)."""
        stub = runtime_pb2_grpc.RuntimeServiceStub(self._ensure())
        resp: runtime_pb2.GetRuntimeConfigResponse = await stub.GetRuntimeConfig(
            runtime_pb2.GetRuntimeConfigRequest(), metadata=self.call_metadata(), timeout=timeout
        )
        return resp

    async def record_rejected(
        self, record: runtime_pb2.RecordRejectedRequestRequest, metadata: Metadata, timeout: float
    ) -> None:
        """Logs, in the core, a request the facade refused itself."""
        stub = runtime_pb2_grpc.RuntimeServiceStub(self._ensure())
        await stub.RecordRejectedRequest(
            record, metadata=self.call_metadata(metadata), timeout=timeout
        )

    async def health(self, timeout: float = 2.0) -> bool:
        """True when the core answers SERVING for the overall service ""."""
        stub = health_pb2_grpc.HealthStub(self._ensure())
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        await self._channel.close()
