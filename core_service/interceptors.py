"""Cross-cutting RPC work in one place: authentication by API key, mapping
domain errors to rich gRPC statuses, and one structured log line per call."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from core_service.errors import ERROR_DOMAIN, ServiceError, Unauthenticated
from core_service.keys import KeyStore
from core_service.session_manager import Caller

log = logging.getLogger("ccapi.rpc")

CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("ccapi_caller")

# Services that need an API key; health and reflection stay open.
KEYED_SERVICES = (
    "/claudecode.v1.AgentService/",
    "/claudecode.v1.SessionService/",
    "/claudecode.v1.ModelService/",
)


def current_caller() -> Caller:
    return CALLER.get()


def rich_status(error: ServiceError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    if error.param:
        info.metadata["param"] = error.param
    details = [_pack(info)]
    if error.retry_after_seconds:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=error.retry_after_seconds)
        )
        details.append(_pack(retry))
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    for name, value in metadata or ():
        if name.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


class CoreInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates keyed services, maps ServiceError, logs each call."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not method.startswith("/claudecode.v1."):
            return handler
        keyed = method.startswith(KEYED_SERVICES)
        metadata = details.invocation_metadata
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.monotonic()
                try:
                    if keyed:
                        await self._authenticate(metadata)
                    result = await inner_unary(request, context)
                except ServiceError as error:
                    self._log(method, started, error)
                    await _abort(context, error)
                    raise AssertionError("unreachable") from None
                self._log(method, started, None)
                return result

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started = time.monotonic()
                try:
                    if keyed:
                        await self._authenticate(metadata)
                    async for response in inner_stream(request, context):
                        yield response
                except ServiceError as error:
                    self._log(method, started, error)
                    await _abort(context, error)
                    return
                except asyncio.CancelledError:
                    log.info(
                        "rpc cancelled",
                        extra={
                            "method": method,
                            "outcome": "CANCELLED",
                            "duration_ms": _ms(started),
                        },
                    )
                    raise
                self._log(method, started, None)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _authenticate(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> None:
        token = bearer_token(metadata)
        if not token:
            raise Unauthenticated(
                "Missing API key: send it as 'authorization: Bearer <key>'.",
            )
        info = await asyncio.to_thread(self._keys.authenticate, token)
        if info is None:
            raise Unauthenticated("Incorrect, expired or revoked API key.")
        CALLER.set(Caller(key_id=info.id))

    @staticmethod
    def _log(method: str, started: float, error: ServiceError | None) -> None:
        caller = CALLER.get(None)
        log.info(
            "rpc finished",
            extra={
                "method": method,
                "key_id": caller.key_id if caller else None,
                "outcome": error.code.name if error else "OK",
                "reason": error.reason if error else None,
                "duration_ms": _ms(started),
            },
        )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    status = rich_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)
