"""Cross-cutting RPC work in one place: authentication (API keys for the
public services, the admin token and acting user for AdminService), mapping
domain errors to rich gRPC statuses, a structured log line per call, and a
request-log row per API request."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from core_service import db_errors, request_context
from core_service.errors import ERROR_DOMAIN, PermissionDenied, ServiceError, Unauthenticated
from core_service.keys import KeyStore
from core_service.request_context import RequestRecord
from core_service.session_manager import Caller
from core_service.users import UserStore

log = logging.getLogger("ccapi.rpc")

CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("ccapi_caller")
ACTOR: contextvars.ContextVar[Actor] = contextvars.ContextVar("ccapi_actor")

# Services that need an API key; health, reflection and runtime stay open.
KEYED_SERVICES = (
    "/claudecode.v1.AgentService/",
    "/claudecode.v1.SessionService/",
    "/claudecode.v1.ModelService/",
)
ADMIN_SERVICE = "/claudecode.v1.AdminService/"
ADMIN_TOKEN_HEADER = "x-ccapi-admin-token"
ACTOR_HEADER = "x-ccapi-actor"
ENDPOINT_HEADER = "x-ccapi-endpoint"
REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class Actor:
    """Who is calling AdminService: a signed-in user, or the service itself."""

    username: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


def current_caller() -> Caller:
    return CALLER.get()


def current_actor() -> Actor:
    return ACTOR.get()


def require_writer() -> Actor:
    actor = ACTOR.get()
    if not actor.can_write:
        raise PermissionDenied(
            "Viewers can look but not change anything.", reason="viewer_read_only"
        )
    return actor


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


def _header(metadata: tuple[tuple[str, str | bytes], ...] | None, name: str) -> str:
    for key, value in metadata or ():
        if key.lower() == name and isinstance(value, str):
            return value
    return ""


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    scheme, _, token = _header(metadata, "authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


LogSink = Callable[[RequestRecord, grpc.StatusCode, str, str], None]
ToolPolicy = Callable[[], tuple[str, ...]]


class CoreInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        keys: KeyStore,
        users: UserStore | None = None,
        admin_token: str = "",
        log_sink: LogSink | None = None,
        default_tools: ToolPolicy | None = None,
    ) -> None:
        self._keys = keys
        self._users = users
        self._admin_token = admin_token
        self._log_sink = log_sink
        self._default_tools = default_tools or (lambda: ())

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not method.startswith("/claudecode.v1."):
            return handler
        metadata = details.invocation_metadata
        keyed = method.startswith(KEYED_SERVICES)
        admin = method.startswith(ADMIN_SERVICE)

        async def before() -> RequestRecord:
            record = RequestRecord(
                method=method,
                endpoint=_header(metadata, ENDPOINT_HEADER) or f"grpc:{method}",
                request_id=_header(metadata, REQUEST_ID_HEADER)[:100],
            )
            request_context.CURRENT.set(record)
            if keyed:
                await self._authenticate(metadata, record)
            elif admin:
                await self._authenticate_admin(metadata)
            return record

        def after(
            record: RequestRecord, code: grpc.StatusCode, error: str, reason: str = ""
        ) -> None:
            caller = CALLER.get(None)
            log.info(
                "rpc finished",
                extra={
                    "method": method,
                    "request_id": record.request_id,
                    "key_id": caller.key_id if caller else None,
                    "session_id": record.session_id or None,
                    "model": record.model or None,
                    "outcome": code.name,
                    "duration_ms": _ms(record.started),
                },
            )
            if keyed and self._log_sink is not None:
                self._log_sink(record, code, reason, error)

        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                record = RequestRecord(method=method, endpoint="", request_id="")
                try:
                    record = await before()
                    result = await inner_unary(request, context)
                except ServiceError as error:
                    after(record, error.code, error.message, error.reason)
                    await _abort(context, error)
                    raise AssertionError("unreachable") from None
                except asyncio.CancelledError:
                    after(record, grpc.StatusCode.CANCELLED, "cancelled by the client")
                    raise
                except Exception as failure:
                    # A full disk is told plainly; anything else stays internal.
                    mapped = db_errors.as_service_error(failure)
                    if mapped is None:
                        raise
                    after(record, mapped.code, mapped.message, mapped.reason)
                    await _abort(context, mapped)
                    raise AssertionError("unreachable") from None
                after(record, grpc.StatusCode.OK, "")
                return result

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                record = RequestRecord(method=method, endpoint="", request_id="")
                outcome: tuple[grpc.StatusCode, str, str] | None = None
                try:
                    record = await before()
                    async for response in inner_stream(request, context):
                        yield response
                    outcome = (grpc.StatusCode.OK, "", "")
                except ServiceError as error:
                    outcome = (error.code, error.message, error.reason)
                    await _abort(context, error)
                    return
                except Exception as failure:
                    mapped = db_errors.as_service_error(failure)
                    if mapped is not None:
                        # A full disk is told plainly.
                        outcome = (mapped.code, mapped.message, mapped.reason)
                        await _abort(context, mapped)
                        return
                    # Not handled here: recorded for the log, then re-raised to gRPC.
                    outcome = (grpc.StatusCode.INTERNAL, "internal error", "")
                    raise
                finally:
                    # Also reached when the client cancels or gRPC closes this
                    # generator (GeneratorExit) while it waits at a `yield`: every
                    # call gets its log line and request-log row.
                    if outcome is None:
                        outcome = (
                            (grpc.StatusCode.OK, "", "")
                            if record.completed
                            else (grpc.StatusCode.CANCELLED, "cancelled by the client", "")
                        )
                    after(record, *outcome)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _authenticate(
        self, metadata: tuple[tuple[str, str | bytes], ...] | None, record: RequestRecord
    ) -> None:
        token = bearer_token(metadata)
        if not token:
            raise Unauthenticated("Missing API key: send it as 'authorization: Bearer <key>'.")
        info = await asyncio.to_thread(self._keys.authenticate, token)
        if info is None:
            raise Unauthenticated("Incorrect, expired or revoked API key.")
        record.key = info
        tools = info.allowed_tools or self._default_tools()
        CALLER.set(Caller(key_id=info.id, allowed_tools=tools or None, key=info))

    async def _authenticate_admin(
        self, metadata: tuple[tuple[str, str | bytes], ...] | None
    ) -> None:
        token = _header(metadata, ADMIN_TOKEN_HEADER)
        if not self._admin_token or not hmac.compare_digest(
            token.encode(), self._admin_token.encode()
        ):
            raise Unauthenticated(
                "AdminService needs the service's admin token.", reason="invalid_admin_token"
            )
        username = _header(metadata, ACTOR_HEADER)
        if not username:
            ACTOR.set(Actor("service", "admin"))
            return
        user = await asyncio.to_thread(self._users.get, username) if self._users else None
        if user is None or user.disabled:
            raise PermissionDenied(
                "That admin-site user does not exist or is disabled.", reason="actor_not_allowed"
            )
        ACTOR.set(Actor(user.username, user.role))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    status = rich_status(error)
    trailing = tuple(status.trailing_metadata) + tuple(error.headers.items())
    await context.abort(status.code, status.details, trailing)
