"""The admin site's only way to the core: AdminService over one grpc.aio channel.

Every call carries the service's admin token and, when made for a signed-in
person, ``x-ccapi-actor`` so the core applies that user's role. gRPC failures
become :class:`CoreError`, which the app maps to pages in one place.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from claudecode.v1 import admin_pb2, admin_pb2_grpc

ADMIN_TOKEN_HEADER = "x-ccapi-admin-token"
ACTOR_HEADER = "x-ccapi-actor"


@dataclass
class CoreError(Exception):
    """A failed AdminService call, with the core's reason and parameter when given."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    param: str = ""
    retry_after_seconds: int = 0

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError) -> CoreError:
        code = error.code() or grpc.StatusCode.UNKNOWN
        message = error.details() or code.name
        reason = param = ""
        retry = 0
        for name, value in error.trailing_metadata() or ():
            if name != "grpc-status-details-bin" or not isinstance(value, bytes):
                continue
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:  # a malformed detail must not hide the error itself
                continue
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                retry_info = error_details_pb2.RetryInfo()
                if detail.Is(info.DESCRIPTOR):
                    detail.Unpack(info)
                    reason = info.reason
                    param = info.metadata.get("param", "")
                elif detail.Is(retry_info.DESCRIPTOR):
                    detail.Unpack(retry_info)
                    retry = int(retry_info.retry_delay.seconds)
        return cls(code, message, reason, param, retry)


_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


class AdminClient:
    """Thin async wrappers over AdminService; one method per RPC the site uses."""

    def __init__(self, addr: str, admin_token: str, timeout: float = 10.0) -> None:
        self.addr = addr
        self._token = admin_token
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _stub(self) -> admin_pb2_grpc.AdminServiceStub:
        loop = asyncio.get_running_loop()
        if self._channel is None or self._pid != os.getpid() or self._loop is not loop:
            self._channel = grpc.aio.insecure_channel(self.addr, options=_CHANNEL_OPTIONS)
            self._pid = os.getpid()
            self._loop = loop
        return admin_pb2_grpc.AdminServiceStub(self._channel)

    def metadata(self, actor: str | None) -> tuple[tuple[str, str], ...]:
        md: list[tuple[str, str]] = [(ADMIN_TOKEN_HEADER, self._token)]
        if actor:
            md.append((ACTOR_HEADER, actor))
        return tuple(md)

    async def call(self, method: str, request: Any, actor: str | None) -> Any:
        """Calls a unary RPC by name; raises CoreError on failure."""
        rpc = getattr(self._stub(), method)
        try:
            return await rpc(request, metadata=self.metadata(actor), timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise CoreError.from_rpc(error) from None

    async def watch(self, actor: str | None) -> AsyncIterator[admin_pb2.WatchEventsResponse]:
        """Streams events until the caller stops iterating; the call is cancelled then."""
        call = self._stub().WatchEvents(
            admin_pb2.WatchEventsRequest(), metadata=self.metadata(actor)
        )
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as error:
            raise CoreError.from_rpc(error) from None
        finally:
            call.cancel()

    # Users and sign-in --------------------------------------------------------

    async def authenticate(
        self, username: str, password: str, address: str
    ) -> admin_pb2.AuthenticateUserResponse:
        req = admin_pb2.AuthenticateUserRequest(
            username=username, password=password, client_address=address
        )
        resp: admin_pb2.AuthenticateUserResponse = await self.call("AuthenticateUser", req, None)
        return resp

    async def list_users(self, actor: str | None) -> admin_pb2.ListUsersResponse:
        resp: admin_pb2.ListUsersResponse = await self.call(
            "ListUsers", admin_pb2.ListUsersRequest(), actor
        )
        return resp

    async def close(self) -> None:
        if self._channel is not None and self._pid == os.getpid():
            await self._channel.close()
        self._channel = None
