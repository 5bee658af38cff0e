"""The admin site's way to the core: typed methods over AdminService on one
lazily made grpc.aio channel.

Every call carries the service's admin token and, when made for a signed-in
person, the actor header so the core applies that user's role. gRPC failures
become :class:`CoreError`, which the site maps to pages in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import field_mask_pb2

from ccapi_client.channel import LazyChannel
from ccapi_client.metadata import ACTOR_HEADER, ADMIN_TOKEN_HEADER
from ccapi_client.rich_status import read_details
from claudecode.v1 import admin_pb2 as pb
from claudecode.v1 import admin_pb2_grpc
from claudecode.v1 import content_pb2 as cpb

Actor = str | None


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
        details = read_details(error.trailing_metadata())
        return cls(
            code,
            error.details() or code.name,
            details.reason,
            details.param,
            details.retry_after_seconds,
        )


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


class AdminClient:
    """One method per AdminService RPC the site uses; ``actor`` is the signed-in user."""

    def __init__(self, addr: str, admin_token: str, timeout: float = 10.0) -> None:
        self.addr = addr
        self._token = admin_token
        self.timeout = timeout
        self._channel = LazyChannel(addr)

    def _stub(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self._channel.get())

    def metadata(self, actor: Actor) -> tuple[tuple[str, str], ...]:
        md: list[tuple[str, str]] = [(ADMIN_TOKEN_HEADER, self._token)]
        if actor:
            md.append((ACTOR_HEADER, actor))
        return tuple(md)

    async def _unary(self, method: str, request: Any, actor: Actor) -> Any:
        rpc = getattr(self._stub(), method)
        try:
            return await rpc(request, metadata=self.metadata(actor), timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise CoreError.from_rpc(error) from None

    async def watch(self, actor: Actor) -> AsyncIterator[pb.WatchEventsResponse]:
        """Streams events until the caller stops iterating; the call is cancelled then."""
        call = self._stub().WatchEvents(pb.WatchEventsRequest(), metadata=self.metadata(actor))
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as error:
            raise CoreError.from_rpc(error) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

    # Users and sign-in --------------------------------------------------------

    async def authenticate(
        self, username: str, password: str, address: str
    ) -> pb.AuthenticateUserResponse:
        request = pb.AuthenticateUserRequest(
            username=username, password=password, client_address=address
        )
        reply: pb.AuthenticateUserResponse = await self._unary("AuthenticateUser", request, None)
        return reply

    async def start_sign_in(self, username: str) -> str:
        """The token a new sign-in of ``username`` carries (see :meth:`check_sign_in`)."""
        request = pb.StartSignInRequest(username=username)
        reply: pb.StartSignInResponse = await self._unary("StartSignIn", request, None)
        return reply.sign_in_token

    async def check_sign_in(self, username: str, token: str) -> pb.User:
        """The user as they are now; CoreError UNAUTHENTICATED once the sign-in ended."""
        request = pb.CheckSignInRequest(username=username, sign_in_token=token)
        reply: pb.CheckSignInResponse = await self._unary("CheckSignIn", request, None)
        return reply.user

    async def end_sign_ins(self, actor: Actor, username: str) -> str:
        """Ends every sign-in of ``username``; returns the token from now on."""
        request = pb.EndSignInsRequest(username=username)
        reply: pb.EndSignInsResponse = await self._unary("EndSignIns", request, actor)
        return reply.sign_in_token

    async def list_sign_in_locks(self, actor: Actor) -> list[pb.SignInLock]:
        reply: pb.ListSignInLocksResponse = await self._unary(
            "ListSignInLocks", pb.ListSignInLocksRequest(), actor
        )
        return list(reply.locks)

    async def unlock_user(self, actor: Actor, username: str) -> None:
        await self._unary("UnlockUser", pb.UnlockUserRequest(username=username), actor)

    async def list_users(self, actor: Actor) -> pb.ListUsersResponse:
        reply: pb.ListUsersResponse = await self._unary("ListUsers", pb.ListUsersRequest(), actor)
        return reply

    async def create_user(
        self,
        actor: Actor,
        username: str,
        role: pb.UserRole.ValueType,
        password: str,
        must_change_password: bool,
    ) -> pb.User:
        request = pb.CreateUserRequest(
            username=username,
            role=role,
            password=password,
            must_change_password=must_change_password,
        )
        reply: pb.CreateUserResponse = await self._unary("CreateUser", request, actor)
        return reply.user

    async def update_user(self, actor: Actor, user: pb.User, fields: Iterable[str]) -> pb.User:
        request = pb.UpdateUserRequest(user=user, update_mask=mask(*fields))
        reply: pb.UpdateUserResponse = await self._unary("UpdateUser", request, actor)
        return reply.user

    async def set_user_password(
        self,
        actor: Actor,
        username: str,
        new_password: str,
        *,
        current_password: str = "",
        must_change_password: bool = False,
    ) -> pb.User:
        request = pb.SetUserPasswordRequest(
            username=username,
            new_password=new_password,
            current_password=current_password,
            must_change_password=must_change_password,
        )
        reply: pb.SetUserPasswordResponse = await self._unary("SetUserPassword", request, actor)
        return reply.user

    # Keys ---------------------------------------------------------------------

    async def list_keys(
        self, actor: Actor, *, page_size: int, page_token: str = "", include_revoked: bool = False
    ) -> pb.ListKeysResponse:
        request = pb.ListKeysRequest(
            page_size=page_size, page_token=page_token, include_revoked=include_revoked
        )
        reply: pb.ListKeysResponse = await self._unary("ListKeys", request, actor)
        return reply

    async def key_names(self, actor: Actor) -> dict[str, str]:
        """{key id: name} of every key, revoked ones too (for labelling rows)."""
        reply = await self.list_keys(actor, page_size=500, include_revoked=True)
        return {k.id: k.name for k in reply.keys}

    async def get_key(self, actor: Actor, key_id: str) -> pb.ApiKey:
        reply: pb.GetKeyResponse = await self._unary("GetKey", pb.GetKeyRequest(key_id=key_id),
                                                     actor)
        return reply.key

    async def create_key(
        self,
        actor: Actor,
        *,
        name: str,
        limits: pb.KeyLimits,
        allowed_models: Iterable[str],
        allowed_tools: Iterable[str],
        expires_at: int,
        builtin_tools_default: cpb.BuiltinTools | None = None,
    ) -> pb.CreateKeyResponse:
        request = pb.CreateKeyRequest(
            name=name,
            limits=limits,
            allowed_models=allowed_models,
            allowed_tools=allowed_tools,
            expires_at=expires_at,
            builtin_tools_default=builtin_tools_default,
        )
        reply: pb.CreateKeyResponse = await self._unary("CreateKey", request, actor)
        return reply

    async def update_key(self, actor: Actor, key: pb.ApiKey, fields: Iterable[str]) -> pb.ApiKey:
        request = pb.UpdateKeyRequest(key=key, update_mask=mask(*fields))
        reply: pb.UpdateKeyResponse = await self._unary("UpdateKey", request, actor)
        return reply.key

    async def revoke_key(self, actor: Actor, key_id: str) -> pb.ApiKey:
        request = pb.RevokeKeyRequest(key_id=key_id)
        reply: pb.RevokeKeyResponse = await self._unary("RevokeKey", request, actor)
        return reply.key

    # Logs and usage -----------------------------------------------------------

    async def list_request_logs(
        self, actor: Actor, filters: pb.ListRequestLogsRequest
    ) -> pb.ListRequestLogsResponse:
        reply: pb.ListRequestLogsResponse = await self._unary("ListRequestLogs", filters, actor)
        return reply

    async def get_request_log(self, actor: Actor, log_id: str) -> pb.GetRequestLogResponse:
        request = pb.GetRequestLogRequest(log_id=log_id)
        reply: pb.GetRequestLogResponse = await self._unary("GetRequestLog", request, actor)
        return reply

    async def get_usage(
        self,
        actor: Actor,
        *,
        start_time_ms: int,
        end_time_ms: int,
        bucket_seconds: int,
        group_by: pb.UsageGrouping.ValueType,
    ) -> pb.GetUsageResponse:
        request = pb.GetUsageRequest(
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            bucket_seconds=bucket_seconds,
            group_by=group_by,
        )
        reply: pb.GetUsageResponse = await self._unary("GetUsage", request, actor)
        return reply

    # Configuration ------------------------------------------------------------

    async def get_config(self, actor: Actor) -> pb.GetConfigResponse:
        reply: pb.GetConfigResponse = await self._unary("GetConfig", pb.GetConfigRequest(), actor)
        return reply

    async def update_config(
        self, actor: Actor, config: pb.LiveConfig, fields: Iterable[str], expected_version: int
    ) -> pb.UpdateConfigResponse:
        request = pb.UpdateConfigRequest(
            config=config, update_mask=mask(*fields), expected_version=expected_version
        )
        reply: pb.UpdateConfigResponse = await self._unary("UpdateConfig", request, actor)
        return reply

    async def list_config_history(
        self, actor: Actor, page_size: int
    ) -> pb.ListConfigHistoryResponse:
        request = pb.ListConfigHistoryRequest(page_size=page_size)
        reply: pb.ListConfigHistoryResponse = await self._unary(
            "ListConfigHistory", request, actor
        )
        return reply

    # Sessions -----------------------------------------------------------------

    async def list_all_sessions(
        self, actor: Actor, *, key_id: str, page_size: int, page_token: str
    ) -> pb.ListAllSessionsResponse:
        request = pb.ListAllSessionsRequest(
            key_id=key_id, page_size=page_size, page_token=page_token
        )
        reply: pb.ListAllSessionsResponse = await self._unary("ListAllSessions", request, actor)
        return reply

    async def get_session_detail(
        self, actor: Actor, session_id: str
    ) -> pb.GetSessionDetailResponse:
        request = pb.GetSessionDetailRequest(session_id=session_id)
        reply: pb.GetSessionDetailResponse = await self._unary("GetSessionDetail", request, actor)
        return reply
