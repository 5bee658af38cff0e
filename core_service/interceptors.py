"""Cross-cutting RPC work in one place: the request context (who calls, from
where), authentication (API keys for the public services, the admin token and
acting user for AdminService), mapping domain errors to rich gRPC statuses, a
structured log line per call, and a request-log row per API request.

Who may say what: any caller names its request id; only the facade (its
credential, `ccapi_client.service_identity`) names the public endpoint, the
HTTP client's address and whether the client asked for a stream. Wrong API
keys are counted per client address; past a budget they get 429 instead of
401, while a valid key always authenticates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from ccapi_client.metadata import (
    ACTOR_HEADER,
    ADMIN_TOKEN_HEADER,
    CLIENT_ADDRESS_HEADER,
    ENDPOINT_HEADER,
    FACADE_TOKEN_HEADER,
    REQUEST_ID_HEADER,
)
from ccapi_client.rich_status import to_status
from ccapi_client.service_identity import is_facade_credential
from claudecode.v1 import agent_pb2
from core_service import db_errors, request_context
from core_service.client_stream_refusal import hear_out
from core_service.errors import PermissionDenied, ResourceExhausted, ServiceError, Unauthenticated
from core_service.keys import KeyStore
from core_service.rate_buckets import WRONG_KEY_THROTTLED, TokenBuckets
from core_service.request_context import Actor, RequestContext, final_status
from core_service.turns.admission import Caller
from core_service.users import UserStore

log = logging.getLogger("ccapi.rpc")

# Services that need an API key; health, reflection and runtime stay open.
KEYED_SERVICES = (
    "/claudecode.v1.AgentService/",
    "/claudecode.v1.SessionService/",
    "/claudecode.v1.ModelService/",
    "/claudecode.v1.FileService/",
)
ADMIN_SERVICE = "/claudecode.v1.AdminService/"

# Wrong or missing API keys one address may send before it is slowed down:
# a burst of this many, then one per refill interval. A valid key is never
# refused, so this only costs a guesser (or a misconfigured client) time.
KEY_FAILURE_BURST = 20
KEY_FAILURE_REFILL_SECONDS = 3.0


def current_caller() -> Caller:
    """The authenticated key of a keyed service's call (servicers only)."""
    caller = request_context.current().caller
    assert caller is not None, "keyed services are authenticated first"
    return caller


def current_actor() -> Actor:
    """Who calls AdminService (servicers only)."""
    actor = request_context.current().actor
    assert actor is not None, "AdminService calls are authenticated first"
    return actor


def require_writer() -> Actor:
    actor = current_actor()
    if not actor.can_write:
        raise PermissionDenied(
            "Viewers can look but not change anything.", reason="viewer_read_only"
        )
    return actor


def rich_status(error: ServiceError) -> grpc.Status:
    status = to_status(
        error.code, error.message, error.reason, error.param or "", error.retry_after_seconds or 0
    )
    return rpc_status.to_status(status)


def _header(metadata: tuple[tuple[str, str | bytes], ...] | None, name: str) -> str:
    for key, value in metadata or ():
        if key.lower() == name and isinstance(value, str):
            return value
    return ""


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    scheme, _, token = _header(metadata, "authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


LogSink = Callable[[RequestContext, grpc.StatusCode, str, str], None]
ToolPolicy = Callable[[], tuple[str, ...]]
# Metadata kept out of the context's headers: secrets.
SECRET_HEADERS = frozenset({"authorization", ADMIN_TOKEN_HEADER, FACADE_TOKEN_HEADER})


def peer_address(peer: str) -> str:
    """The host part of a gRPC peer ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", "unix:/p")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer


def address_bucket(address: str) -> str:
    """What one client is, for counting its failures: an IPv4 address, or the
    /64 an IPv6 address is in (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def request_context_of(
    method: str,
    metadata: tuple[tuple[str, str | bytes], ...] | None,
    request: Any,
    peer: str = "",
    via_facade: bool = False,
) -> RequestContext:
    """Where a call came from. The facade names the endpoint in a request's
    `RequestOrigin` (RunTurn) or else the endpoint header, and the client's
    address in its header; from anyone else those are ignored, and the call is
    logged as "grpc:<method>" from its peer address."""
    request_id = _header(metadata, REQUEST_ID_HEADER)
    endpoint = ""
    client_stream = True
    address = peer_address(peer)
    origin = getattr(request, "origin", None)
    if isinstance(request, agent_pb2.StartBackgroundTurnRequest):
        origin = request.turn.origin
    if isinstance(origin, agent_pb2.RequestOrigin):
        request_id = origin.request_id or request_id
    if via_facade:
        endpoint = _header(metadata, ENDPOINT_HEADER)
        if isinstance(origin, agent_pb2.RequestOrigin):
            endpoint = origin.endpoint
            client_stream = origin.client_stream
        address = _header(metadata, CLIENT_ADDRESS_HEADER) or address
    headers = {
        key.lower(): value
        for key, value in metadata or ()
        if isinstance(value, str) and key.lower() not in SECRET_HEADERS
    }
    return RequestContext(
        method=method,
        endpoint=endpoint[:200] or f"grpc:{method}",
        request_id=request_id[:100],
        headers=headers,
        via_facade=via_facade,
        client_address=address[:100],
        client_stream=client_stream,
    )


class CoreInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        keys: KeyStore,
        users: UserStore | None = None,
        admin_token: str = "",
        log_sink: LogSink | None = None,
        default_tools: ToolPolicy | None = None,
        key_failures: TokenBuckets | None = None,
    ) -> None:
        self._keys = keys
        self._users = users
        self._admin_token = admin_token
        self._log_sink = log_sink
        self._default_tools = default_tools or (lambda: ())
        # `is None`, not `or`: an empty TokenBuckets is falsy (it has a length).
        self._key_failures = (
            key_failures
            if key_failures is not None
            else TokenBuckets(KEY_FAILURE_BURST, 1 / KEY_FAILURE_REFILL_SECONDS)
        )

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

        async def before(request: Any, context: grpc.aio.ServicerContext) -> RequestContext:
            """The call's context, authenticated, handed to the servicer."""
            via_facade = is_facade_credential(
                _header(metadata, FACADE_TOKEN_HEADER), self._admin_token
            )
            call = request_context_of(method, metadata, request, context.peer(), via_facade)
            # Set first: a refused call is logged under its context too.
            request_context.CURRENT.set(call)
            if keyed:
                caller = await self._authenticate(metadata, call.client_address)
                call = dataclasses.replace(call, caller=caller)
            elif admin:
                call = dataclasses.replace(call, actor=await self._authenticate_admin(metadata))
            request_context.CURRENT.set(call)
            return call

        def after(code: grpc.StatusCode, error: str, reason: str = "") -> None:
            call = request_context.CURRENT.get()
            turn = call.reply.turn
            log.info(
                "rpc finished",
                extra={
                    "method": method,
                    "request_id": call.request_id,
                    "key_id": call.caller.key_id if call.caller else None,
                    "session_id": (turn.session_id if turn else "") or None,
                    "model": (turn.model if turn else "") or None,
                    "outcome": code.name,
                    "duration_ms": call.ms_since_start(),
                },
            )
            if keyed and self._log_sink is not None:
                self._log_sink(call, code, reason, error)

        def answered_once(
            inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
            origin_of: Callable[[Any], Any],
            streamed: bool = False,
        ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
            """Wraps an RPC with one response (unary, or client streaming, whose
            request is a stream and so carries no origin)."""

            async def refuse(
                request: Any, context: grpc.aio.ServicerContext, error: ServiceError
            ) -> None:
                if streamed:
                    await hear_out(request, context)
                await _abort(context, error)

            async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    await before(origin_of(request), context)
                    result = await inner(request, context)
                except ServiceError as error:
                    after(error.code, error.message, error.reason)
                    await refuse(request, context, error)
                    raise AssertionError("unreachable") from None
                except asyncio.CancelledError:
                    after(grpc.StatusCode.CANCELLED, "cancelled by the client")
                    raise
                except Exception as failure:
                    # A full disk is told plainly; anything else stays internal.
                    mapped = db_errors.as_service_error(failure)
                    if mapped is None:
                        raise
                    after(mapped.code, mapped.message, mapped.reason)
                    await refuse(request, context, mapped)
                    raise AssertionError("unreachable") from None
                after(grpc.StatusCode.OK, "")
                return result

            return handle

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                answered_once(handler.unary_unary, lambda request: request),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                responses = inner_stream(request, context)
                status: tuple[grpc.StatusCode, str, str] | None = None
                # What the last event sent told the client (a turn's end).
                told: tuple[grpc.StatusCode, str, str] | None = None
                try:
                    await before(request, context)
                    async for response in responses:
                        told = final_status(response) or told
                        yield response
                    status = (grpc.StatusCode.OK, "", "")
                except ServiceError as error:
                    status = (error.code, error.message, error.reason)
                    await _abort(context, error)
                    return
                except Exception as failure:
                    mapped = db_errors.as_service_error(failure)
                    if mapped is not None:
                        # A full disk is told plainly.
                        status = (mapped.code, mapped.message, mapped.reason)
                        await _abort(context, mapped)
                        return
                    # Not handled here: recorded for the log, then re-raised to gRPC.
                    status = (grpc.StatusCode.INTERNAL, "internal error", "")
                    raise
                finally:
                    # Also reached when the client cancels or gRPC closes this
                    # generator (GeneratorExit) while it waits at a `yield`. The
                    # servicer's generator is closed first, so its turn has ended
                    # and reported its outcome: every call gets its log line and
                    # request-log row, complete.
                    try:
                        await responses.aclose()
                    except Exception:
                        # Logged, not raised: the call is ending either way, and
                        # its log line and row below must still be written.
                        log.exception("closing the response stream failed")
                    if status is None:
                        # Closed early. After a turn's last event (completed or
                        # failed) that was the client leaving with its answer,
                        # whatever the call did after; before it, a cancel.
                        status = told or (
                            grpc.StatusCode.CANCELLED,
                            "cancelled by the client",
                            "",
                        )
                    after(*status)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            # Client streaming (FileService.UploadFile): authenticated before
            # the first message is read, like the other kinds.
            return grpc.stream_unary_rpc_method_handler(
                answered_once(handler.stream_unary, lambda _requests: None, streamed=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        # No bidirectional RPC exists; one added would need a branch here.
        return handler

    async def _authenticate(
        self, metadata: tuple[tuple[str, str | bytes], ...] | None, address: str
    ) -> Caller:
        token = bearer_token(metadata)
        info = await asyncio.to_thread(self._keys.authenticate, token) if token else None
        if info is None:
            # Checked after the key: a valid key is never refused for what
            # others sent from its address.
            wait = self._key_failures.take(address_bucket(address))
            if wait:
                raise ResourceExhausted(
                    "Too many requests with a missing or wrong API key from this address; "
                    f"try again in {wait} s.",
                    reason=WRONG_KEY_THROTTLED,
                    retry_after_seconds=wait,
                )
            if not token:
                raise Unauthenticated("Missing API key: send it as 'authorization: Bearer <key>'.")
            raise Unauthenticated("Incorrect, expired or revoked API key.")
        tools = info.allowed_tools or self._default_tools()
        return Caller(key_id=info.id, allowed_tools=tools or None, key=info)

    async def _authenticate_admin(
        self, metadata: tuple[tuple[str, str | bytes], ...] | None
    ) -> Actor:
        token = _header(metadata, ADMIN_TOKEN_HEADER)
        if not self._admin_token or not hmac.compare_digest(
            token.encode(), self._admin_token.encode()
        ):
            raise Unauthenticated(
                "AdminService needs the service's admin token.", reason="invalid_admin_token"
            )
        username = _header(metadata, ACTOR_HEADER)
        if not username:
            return Actor("service", "admin")
        user = await asyncio.to_thread(self._users.get, username) if self._users else None
        if user is None or user.disabled:
            raise PermissionDenied(
                "That admin-site user does not exist or is disabled.", reason="actor_not_allowed"
            )
        return Actor(user.username, user.role)


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    status = rich_status(error)
    trailing = tuple(status.trailing_metadata) + tuple(error.headers.items())
    await context.abort(status.code, status.details, trailing)
