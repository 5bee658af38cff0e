"""claudecode.v1.AdminService: decode, check the actor's role, call a store, encode."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import grpc

from ccapi_client.enums import PERIOD_BY_NAME as PERIOD_ENUM
from ccapi_client.enums import PERIOD_NAMES as PERIODS
from ccapi_client.enums import ROLE_BY_NAME as ROLE_ENUM
from ccapi_client.enums import ROLE_NAMES
from claudecode.v1 import admin_pb2 as pb
from claudecode.v1 import admin_pb2_grpc
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import sessions_pb2 as spb
from core_service import request_log, workspace_reads
from core_service.agent.workspace_layout import WorkspaceLayout
from core_service.attachment_log import AttachmentLog
from core_service.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from core_service.interceptors import current_actor, require_writer
from core_service.keys import KeyInfo, KeyLimits, KeySpec, KeyStore
from core_service.limits import LimitGate
from core_service.live_config import LiveConfigStore
from core_service.model_catalog import ModelCatalog
from core_service.servicers import convert
from core_service.store import SessionStore
from core_service.turns.registry import ProcessRegistry
from core_service.users import UserInfo, UserStore

UsageSource = Callable[
    [int, int, int, "pb.UsageGrouping.ValueType"], tuple[list[pb.UsageBucket], pb.UsageBucket]
]
DEFAULT_PAGE = 50
MAX_PAGE = 500
WATCH_POLL_SECONDS = 1.0
# How far back a watcher looks for rows that landed since its last poll (as
# long as the longest turn), how many it reads, and how many ids it remembers.
WATCH_WINDOW_MS = 30 * 60 * 1000
WATCH_PAGE = 200
WATCH_REMEMBER = 5000
WATCH_FRESH_MS = 60 * 1000


def _unix(value: datetime | None) -> int:
    if value is None:
        return 0
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def encode_key(key: KeyInfo, last_day: tuple[int, int] = (0, 0)) -> pb.ApiKey:
    return pb.ApiKey(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        created_at=_unix(key.created_at),
        expires_at=_unix(key.expires_at),
        revoked_at=_unix(key.revoked_at),
        last_used_at=_unix(key.last_used_at),
        limits=pb.KeyLimits(
            requests_per_minute=key.limits.rpm,
            tokens_per_minute=key.limits.tpm,
            max_concurrent=key.limits.max_concurrent,
            budget_usd=key.limits.budget_usd,
            budget_period=PERIOD_ENUM.get(key.limits.budget_period, pb.BUDGET_PERIOD_MONTH),
        ),
        allowed_models=list(key.allowed_models),
        allowed_tools=list(key.allowed_tools),
        builtin_tools_default=_encode_builtin(key.builtin_tools_default),
        usage=pb.KeyUsage(
            requests_24h=last_day[0],
            tokens_24h=last_day[1],
            cost_usd_period=key.spent_usd,
            cost_usd_total=key.spent_total_usd,
        ),
    )


def decode_key_spec(key: pb.ApiKey | pb.CreateKeyRequest, limits: pb.KeyLimits) -> KeySpec:
    return KeySpec(
        name=key.name,
        limits=KeyLimits(
            rpm=limits.requests_per_minute,
            tpm=limits.tokens_per_minute,
            max_concurrent=limits.max_concurrent,
            budget_usd=limits.budget_usd,
            budget_period=PERIODS.get(limits.budget_period, "month"),
        ),
        allowed_models=tuple(m for m in key.allowed_models if m),
        allowed_tools=tuple(t for t in key.allowed_tools if t),
        expires_at=datetime.fromtimestamp(key.expires_at, UTC) if key.expires_at else None,
        builtin_tools_default=_decode_builtin(key.builtin_tools_default),
    )


def _encode_builtin(default: bool | tuple[str, ...]) -> cpb.BuiltinTools:
    if isinstance(default, bool):
        return cpb.BuiltinTools(all=default)
    return cpb.BuiltinTools(names=list(default))


def _decode_builtin(message: cpb.BuiltinTools) -> bool | tuple[str, ...]:
    if message.all:
        return True
    return tuple(n for n in message.names if n) or False


def encode_user(user: UserInfo) -> pb.User:
    return pb.User(
        username=user.username,
        role=ROLE_ENUM.get(user.role, pb.USER_ROLE_VIEWER),
        disabled=user.disabled,
        created_at=_unix(user.created_at),
        last_login_at=_unix(user.last_login_at),
        must_change_password=user.must_change_password,
    )


def _page(size: int, token: str) -> tuple[int, int]:
    size = size or DEFAULT_PAGE
    if not 0 < size <= MAX_PAGE:
        raise InvalidArgument(f"page_size must be 1..{MAX_PAGE}.", param="page_size")
    try:
        offset = int(token or "0")
    except ValueError:
        raise InvalidArgument("Invalid page_token.", param="page_token") from None
    return size, offset


def _require_service_or_self(username: str) -> None:
    """Sign-in tokens are the site's (no actor) or the user's own business."""
    actor = current_actor()
    if actor.username != "service" and actor.username != username:
        require_writer()


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        keys: KeyStore,
        users: UserStore,
        config: LiveConfigStore,
        catalog: ModelCatalog,
        logs: request_log.RequestLogQuery,
        store: SessionStore,
        sessions: ProcessRegistry,
        layout: WorkspaceLayout,
        usage_source: UsageSource,
        gate: LimitGate,
        attachment_log: AttachmentLog | None = None,
    ) -> None:
        self._attachment_log = attachment_log
        self._gate = gate
        self._keys = keys
        self._users = users
        self._config = config
        self._catalog = catalog
        self._logs = logs
        self._store = store
        self._sessions = sessions
        self._layout = layout
        self._usage = usage_source

    # Keys

    async def CreateKey(
        self, request: pb.CreateKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateKeyResponse:
        require_writer()
        spec = decode_key_spec(request, request.limits)
        self._check_models(spec.allowed_models)
        try:
            info, secret = await asyncio.to_thread(self._keys.create, spec.name, None, spec)
        except ValueError as error:
            raise InvalidArgument(str(error), param=str(error).split(":")[0]) from None
        return pb.CreateKeyResponse(key=encode_key(info), secret=secret)

    async def ListKeys(
        self, request: pb.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListKeysResponse:
        size, offset = _page(request.page_size, request.page_token)
        keys = await asyncio.to_thread(self._keys.all, request.include_revoked)
        usage = await asyncio.to_thread(self._gate.usage_last_day)
        page = keys[offset : offset + size]
        token = str(offset + size) if len(keys) > offset + size else ""
        return pb.ListKeysResponse(
            keys=[encode_key(k, usage.get(k.id, (0, 0))) for k in page], next_page_token=token
        )

    async def GetKey(
        self, request: pb.GetKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetKeyResponse:
        info = await asyncio.to_thread(self._keys.get, request.key_id)
        if info is None:
            raise NotFound(f"No key '{request.key_id}'.", reason="key_not_found", param="key_id")
        usage = await asyncio.to_thread(self._gate.usage_last_day)
        return pb.GetKeyResponse(key=encode_key(info, usage.get(info.id, (0, 0))))

    async def UpdateKey(
        self, request: pb.UpdateKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateKeyResponse:
        require_writer()
        fields = set(request.update_mask.paths)
        allowed = {
            "name",
            "limits",
            "allowed_models",
            "allowed_tools",
            "expires_at",
            "builtin_tools_default",
        }
        if not fields or not fields <= allowed:
            raise InvalidArgument(
                f"update_mask may name {', '.join(sorted(allowed))}.", param="update_mask"
            )
        current = await asyncio.to_thread(self._keys.get, request.key.id)
        if current is None:
            raise NotFound(f"No key '{request.key.id}'.", reason="key_not_found", param="key.id")
        spec = decode_key_spec(request.key, request.key.limits)
        if "name" not in fields:
            spec = dataclasses.replace(spec, name=current.name)
        self._check_models(spec.allowed_models)
        try:
            info = await asyncio.to_thread(self._keys.update, request.key.id, spec, fields)
        except ValueError as error:
            raise InvalidArgument(str(error), param=str(error).split(":")[0]) from None
        assert info is not None
        return pb.UpdateKeyResponse(key=encode_key(info))

    async def RevokeKey(
        self, request: pb.RevokeKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeKeyResponse:
        require_writer()
        info = await asyncio.to_thread(self._keys.revoke, request.key_id)
        if info is None:
            raise NotFound(f"No key '{request.key_id}'.", reason="key_not_found", param="key_id")
        return pb.RevokeKeyResponse(key=encode_key(info))

    def _check_models(self, names: tuple[str, ...]) -> None:
        for name in names:
            try:
                self._catalog.resolve(name)
            except NotFound:
                raise InvalidArgument(f"Unknown model '{name}'.", param="allowed_models") from None

    # Logs and usage

    async def ListRequestLogs(
        self, request: pb.ListRequestLogsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRequestLogsResponse:
        filters = request_log.LogFilters.from_proto(request)
        try:
            rows, token = await asyncio.to_thread(
                self._logs.list, filters, request.page_size, request.page_token
            )
        except ValueError as error:
            raise InvalidArgument(
                str(error), param="page_token" if "token" in str(error) else "page_size"
            ) from None
        return pb.ListRequestLogsResponse(
            logs=[request_log.to_proto(r) for r in rows], next_page_token=token
        )

    async def GetRequestLog(
        self, request: pb.GetRequestLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRequestLogResponse:
        row = await asyncio.to_thread(self._logs.get, request.log_id)
        if row is None:
            raise NotFound(
                f"No request log '{request.log_id}'.", reason="log_not_found", param="log_id"
            )
        response = pb.GetRequestLogResponse(log=request_log.to_proto(row))
        if row.turn_id:
            turn = await asyncio.to_thread(self._store.get_turn, row.key_id, row.turn_id, False)
            if turn is not None:
                response.turn.CopyFrom(convert.turn_to_pb(turn.turn))
        return response

    async def GetUsage(
        self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageResponse:
        end = request.end_time_ms or int(time.time() * 1000)
        try:
            buckets, totals = await asyncio.to_thread(
                self._usage, request.start_time_ms, end, request.bucket_seconds, request.group_by
            )
        except ValueError as error:
            raise InvalidArgument(str(error), param="bucket_seconds") from None
        return pb.GetUsageResponse(buckets=buckets, totals=totals)

    # Config

    async def GetConfig(
        self, request: pb.GetConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConfigResponse:
        await asyncio.to_thread(self._config.refresh)
        snap = self._config.current
        return pb.GetConfigResponse(
            config=convert.live_config_to_pb(snap.config),
            version=snap.version,
            updated_by=snap.updated_by,
            updated_at=snap.updated_at,
        )

    async def UpdateConfig(
        self, request: pb.UpdateConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateConfigResponse:
        actor = require_writer()
        known = {m.id for m in self._catalog.models()}
        snap = await asyncio.to_thread(
            self._config.update,
            convert.live_config_from_pb(request.config),
            list(request.update_mask.paths),
            actor.username,
            request.expected_version,
            known,
        )
        return pb.UpdateConfigResponse(
            config=convert.live_config_to_pb(snap.config), version=snap.version
        )

    async def ListConfigHistory(
        self, request: pb.ListConfigHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConfigHistoryResponse:
        size, offset = _page(request.page_size, request.page_token)
        changes = await asyncio.to_thread(self._config.history, size + 1, offset)
        token = str(offset + size) if len(changes) > size else ""
        return pb.ListConfigHistoryResponse(
            changes=[convert.config_change_to_pb(c) for c in changes[:size]],
            next_page_token=token,
        )

    # Users

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateUserResponse:
        require_writer()
        user = await asyncio.to_thread(
            self._users.create,
            request.username,
            ROLE_NAMES.get(request.role, ""),
            request.password,
            request.must_change_password,
        )
        return pb.CreateUserResponse(user=encode_user(user))

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsersResponse:
        return pb.ListUsersResponse(
            users=[encode_user(u) for u in await asyncio.to_thread(self._users.all)]
        )

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateUserResponse:
        actor = require_writer()
        fields = set(request.update_mask.paths)
        if not fields or not fields <= {"role", "disabled"}:
            raise InvalidArgument("update_mask may name role and disabled.", param="update_mask")
        if request.user.username == actor.username:
            raise InvalidArgument(
                "You cannot change your own role or disable yourself.", param="user.username"
            )
        role = ROLE_NAMES.get(request.user.role, "") if "role" in fields else None
        disabled = request.user.disabled if "disabled" in fields else None
        user = await asyncio.to_thread(self._users.update, request.user.username, role, disabled)
        return pb.UpdateUserResponse(user=encode_user(user))

    async def SetUserPassword(
        self, request: pb.SetUserPasswordRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetUserPasswordResponse:
        actor = current_actor()
        own = actor.username == request.username
        if own:
            ok = await asyncio.to_thread(
                self._users.verify, request.username, request.current_password
            )
            if not ok:
                raise Unauthenticated("The current password is wrong.", reason="bad_credentials")
        elif not actor.can_write:
            raise PermissionDenied(
                "Only admins can set other users' passwords.", reason="viewer_read_only"
            )
        user = await asyncio.to_thread(
            self._users.set_password,
            request.username,
            request.new_password,
            request.must_change_password and not own,
        )
        return pb.SetUserPasswordResponse(user=encode_user(user))

    async def AuthenticateUser(
        self, request: pb.AuthenticateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthenticateUserResponse:
        user = await asyncio.to_thread(
            self._users.authenticate,
            request.username,
            request.password,
            request.client_address or "unknown",
        )
        return pb.AuthenticateUserResponse(user=encode_user(user))

    # Sign-ins (new: sign-in tokens and locks)

    async def StartSignIn(
        self, request: pb.StartSignInRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartSignInResponse:
        _require_service_or_self(request.username)
        token = await asyncio.to_thread(self._users.start_sign_in, request.username)
        return pb.StartSignInResponse(sign_in_token=token)

    async def CheckSignIn(
        self, request: pb.CheckSignInRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckSignInResponse:
        _require_service_or_self(request.username)
        user = await asyncio.to_thread(
            self._users.check_sign_in, request.username, request.sign_in_token
        )
        if user is None:
            raise Unauthenticated("This sign-in has ended.", reason="sign_in_ended")
        return pb.CheckSignInResponse(user=encode_user(user))

    async def EndSignIns(
        self, request: pb.EndSignInsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EndSignInsResponse:
        if current_actor().username != request.username:
            require_writer()
        token = await asyncio.to_thread(self._users.end_sign_ins, request.username)
        return pb.EndSignInsResponse(sign_in_token=token)

    async def ListSignInLocks(
        self, request: pb.ListSignInLocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSignInLocksResponse:
        locks = await asyncio.to_thread(self._users.locks)
        return pb.ListSignInLocksResponse(
            locks=[
                pb.SignInLock(
                    username=lock.username,
                    address=lock.address,
                    locked_until=_unix(lock.locked_until),
                    failures=lock.failures,
                )
                for lock in locks
            ]
        )

    async def UnlockUser(
        self, request: pb.UnlockUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnlockUserResponse:
        require_writer()
        await asyncio.to_thread(self._users.unlock, request.username)
        return pb.UnlockUserResponse()

    # Sessions

    async def ListAllSessions(
        self, request: pb.ListAllSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAllSessionsResponse:
        size, offset = _page(request.page_size, request.page_token)
        rows = await asyncio.to_thread(
            self._store.list_all_sessions, request.key_id, size + 1, offset
        )
        live = self._sessions.live_sessions()
        token = str(offset + size) if len(rows) > size else ""
        return pb.ListAllSessionsResponse(
            sessions=[
                pb.AdminSession(session=convert.session_to_pb(r, live), key_id=r.key_id)
                for r in rows[:size]
            ],
            next_page_token=token,
        )

    async def GetSessionDetail(
        self, request: pb.GetSessionDetailRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSessionDetailResponse:
        row = await asyncio.to_thread(self._store.get_any_session, request.session_id)
        if row is None:
            raise NotFound(
                f"No session '{request.session_id}'.",
                reason="session_not_found",
                param="session_id",
            )
        turns = await asyncio.to_thread(self._store.turns_of, row.id)
        files = await asyncio.to_thread(
            workspace_reads.list_files, self._layout.workspace_path(row.place.workspace)
        )
        attached = (
            await asyncio.to_thread(self._attachment_log.of_session, row.id)
            if self._attachment_log is not None
            else []
        )
        return pb.GetSessionDetailResponse(
            attachments=[
                pb.AttachedFile(
                    filename=a.filename,
                    size_bytes=a.size_bytes,
                    media_type=a.media_type,
                    file_id=a.file_id,
                    turn_id=a.turn_id,
                    attached_at=a.attached_at,
                )
                for a in attached
            ],
            session=pb.AdminSession(
                session=convert.session_to_pb(row, self._sessions.live_sessions()),
                key_id=row.key_id,
            ),
            turns=[convert.turn_to_pb(t) for t in turns],
            files=[
                spb.WorkspaceFile(path=p, size_bytes=s, modified_at=m, binary=b)
                for p, s, m, b in files
            ],
        )

    # Events

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        # Polling the database, not an in-process bus: events from every core
        # process sharing the database reach every watcher. A row carries its
        # request's start time and lands when the request ends, so the poll
        # looks back over WATCH_WINDOW_MS and remembers what it already sent.
        seen_logs: collections.OrderedDict[str, None] = collections.OrderedDict()
        started_ms = int(time.time() * 1000)
        recent = request_log.LogFilters(start_time_ms=started_ms - WATCH_WINDOW_MS)
        history, _ = await asyncio.to_thread(self._logs.list, recent, WATCH_PAGE, "")
        # Older rows are history; those of the last minute still count as news,
        # so a request that ended just before the watch began is not lost.
        seen_logs.update(
            (row.id, None) for row in history if row.time_ms < started_ms - WATCH_FRESH_MS
        )
        since_keys = datetime.now(UTC)
        version = self._config.current.version
        while True:
            await asyncio.sleep(WATCH_POLL_SECONDS)
            now_ms = int(time.time() * 1000)
            recent = request_log.LogFilters(start_time_ms=now_ms - WATCH_WINDOW_MS)
            rows, _ = await asyncio.to_thread(self._logs.list, recent, WATCH_PAGE, "")
            for row in reversed(rows):
                if row.id not in seen_logs:
                    seen_logs[row.id] = None
                    yield pb.WatchEventsResponse(
                        time_ms=now_ms, request_finished=request_log.to_proto(row)
                    )
            while len(seen_logs) > WATCH_REMEMBER:
                seen_logs.popitem(last=False)
            changed_at = datetime.now(UTC)
            for key in await asyncio.to_thread(self._keys.changed_since, since_keys):
                action = (
                    pb.KEY_ACTION_REVOKED
                    if key.revoked_at
                    else (
                        pb.KEY_ACTION_CREATED
                        if key.updated_at == key.created_at
                        else pb.KEY_ACTION_UPDATED
                    )
                )
                yield pb.WatchEventsResponse(
                    time_ms=now_ms, key_changed=pb.KeyChanged(key=encode_key(key), action=action)
                )
            since_keys = changed_at
            await asyncio.to_thread(self._config.refresh)
            if self._config.current.version != version:
                version = self._config.current.version
                yield pb.WatchEventsResponse(
                    time_ms=now_ms,
                    config_changed=pb.ConfigChanged(
                        version=version, updated_by=self._config.current.updated_by
                    ),
                )
