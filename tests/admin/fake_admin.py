"""An in-process stand-in for the core's AdminService: a real grpc.aio server on a
loopback port, with in-memory users, keys, logs, usage, config, sessions and events.

It runs on its own event loop in a background thread, so synchronous tests (falcon's
TestClient, Playwright's sync API) can call into it freely.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from ccapi_client import rich_status
from ccapi_client.metadata import ACTOR_HEADER, ADMIN_TOKEN_HEADER
from claudecode.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, events_pb2, sessions_pb2

ADMIN_TOKEN = "fake-admin-token"
THROTTLE_AFTER = 5
THROTTLE_SECONDS = 60
WRITES = {
    "CreateKey",
    "UpdateKey",
    "RevokeKey",
    "UpdateConfig",
    "CreateUser",
    "UpdateUser",
    "SetUserPassword",
    "UnlockUser",
}


class Abort(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, param: str = "", reason: str = "", retry: int = 0
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.param, self.reason, self.retry = (
            code,
            message,
            param,
            reason,
            retry,
        )

    def metadata(self) -> tuple[tuple[str, bytes], ...]:
        return rich_status.trailing_metadata(
            self.code, self.message, self.reason or self.code.name.lower(), self.param, self.retry
        )


def _page(items: list[Any], token: str, size: int) -> tuple[list[Any], str]:
    size = size or 50
    start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    chunk = items[start : start + size]
    nxt = start + size
    return chunk, (base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(items) else "")


@dataclass
class FakeAdmin:
    users: dict[str, admin_pb2.User] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    # Failed sign-ins by "user@address" and "addr:address".
    failures: dict[str, list[float]] = field(default_factory=dict)
    # Each user's sign-in token; replaced to end their sign-ins.
    tokens: dict[str, str] = field(default_factory=dict)
    keys: dict[str, admin_pb2.ApiKey] = field(default_factory=dict)
    logs: list[admin_pb2.RequestLog] = field(default_factory=list)
    turns: dict[str, agent_pb2.Turn] = field(default_factory=dict)
    sessions: list[admin_pb2.AdminSession] = field(default_factory=list)
    files: dict[str, list[sessions_pb2.WorkspaceFile]] = field(default_factory=dict)
    config: admin_pb2.LiveConfig = field(
        default_factory=lambda: admin_pb2.LiveConfig(
            log_level="info",
            max_body_bytes=10 * 1024 * 1024,
            log_retention_days=30,
            workspace_retention_days=7,
            max_file_bytes=100 * 1024 * 1024,
            file_retention_days=30,
            pool_size=2,
            claude_max_retries=2,
            log_bodies=True,
            max_live_processes=8,
            max_running_turns=4,
            max_queued_turns=16,
            max_queue_wait_seconds=60,
            max_concurrent_starts=2,
            model_aliases={"gpt-4o": "claude-sonnet-4-5"},
        )
    )
    version: int = 1
    history: list[admin_pb2.ConfigChange] = field(default_factory=list)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    watchers: list[asyncio.Queue[admin_pb2.WatchEventsResponse]] = field(default_factory=list)
    _server: grpc.aio.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    # Lifecycle ------------------------------------------------------------------

    def start(self) -> FakeAdmin:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._start())
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-admin", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        admin_pb2_grpc.add_AdminServiceServicer_to_server(_Servicer(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    def stop(self) -> None:
        if self.loop is None or self._server is None:
            return
        server = self._server
        asyncio.run_coroutine_threadsafe(server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(10)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Runs ``fn`` on the fake's loop (for changes that publish events)."""
        assert self.loop is not None
        future: Future[Any] = Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except Exception as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return future.result(10)

    # Data helpers ---------------------------------------------------------------

    def add_user(
        self,
        username: str,
        password: str,
        role: str = "admin",
        must_change: bool = False,
        disabled: bool = False,
    ) -> None:
        self.users[username] = admin_pb2.User(
            username=username,
            role=admin_pb2.USER_ROLE_ADMIN if role == "admin" else admin_pb2.USER_ROLE_VIEWER,
            created_at=int(time.time()) - 86400 * 3,
            must_change_password=must_change,
            disabled=disabled,
        )
        self.passwords[username] = password

    def add_key(self, name: str, **kw: Any) -> tuple[admin_pb2.ApiKey, str]:
        key_id = "key_" + secrets.token_hex(4)
        secret = "sk-ccapi-" + secrets.token_urlsafe(24)
        key = admin_pb2.ApiKey(
            id=key_id, name=name, prefix=secret[:12], created_at=int(time.time()), **kw
        )
        self.keys[key_id] = key
        return key, secret

    def add_log(self, **kw: Any) -> admin_pb2.RequestLog:
        entry = admin_pb2.RequestLog(id="log_" + secrets.token_hex(5), **kw)
        if not entry.time_ms:
            entry.time_ms = int(time.time() * 1000)
        if not entry.outcome:
            entry.outcome = "ok" if entry.status < 400 else "error"
        self.logs.append(entry)
        self.logs.sort(key=lambda x: x.time_ms, reverse=True)
        return entry

    def publish(self, event: admin_pb2.WatchEventsResponse) -> None:
        """Sends an event to every watcher (call on the fake's loop, or via run)."""
        for queue in list(self.watchers):
            queue.put_nowait(event)

    def finish_request(self, **kw: Any) -> admin_pb2.RequestLog:
        """Logs a request and announces it on the watch, like the real core."""

        def go() -> admin_pb2.RequestLog:
            entry = self.add_log(**kw)
            self.publish(
                admin_pb2.WatchEventsResponse(time_ms=entry.time_ms, request_finished=entry)
            )
            return entry

        result: admin_pb2.RequestLog = self.run(go)
        return result

    # Access -------------------------------------------------------------------

    def check(self, method: str, context: grpc.aio.ServicerContext, request: Any = None) -> str:
        md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.calls.append((method, md))
        if md.get(ADMIN_TOKEN_HEADER) != ADMIN_TOKEN:
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, "Missing or wrong admin token.")
        actor = md.get(ACTOR_HEADER, "")
        if not actor:
            return ""
        user = self.users.get(actor)
        if user is None or user.disabled:
            raise Abort(grpc.StatusCode.PERMISSION_DENIED, "Unknown or disabled user.")
        own_password = (
            method == "SetUserPassword" and request is not None and request.username == actor
        )
        if method in WRITES and user.role != admin_pb2.USER_ROLE_ADMIN and not own_password:
            raise Abort(grpc.StatusCode.PERMISSION_DENIED, "Viewers may only read.")
        return actor


def _rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = fn.__name__

    async def wrapper(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            actor = self.fake.check(name, context, request)
            return fn(self, request, actor)
        except Abort as error:
            await context.abort(error.code, error.message, trailing_metadata=error.metadata())

    wrapper.__name__ = name
    return wrapper


class _Servicer(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
    def __init__(self, fake: FakeAdmin) -> None:
        self.fake = fake

    # Users ----------------------------------------------------------------------

    @_rpc
    def AuthenticateUser(self, req: Any, actor: str) -> Any:
        f = self.fake
        now = time.time()
        scopes = (f"{req.username}@{req.client_address}", f"addr:{req.client_address}")
        for scope, limit in zip(scopes, (THROTTLE_AFTER, 4 * THROTTLE_AFTER), strict=True):
            recent = [t for t in f.failures.get(scope, []) if now - t < THROTTLE_SECONDS]
            f.failures[scope] = recent
            if len(recent) >= limit:
                raise Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "Too many failed sign-ins.",
                    reason="too_many_attempts",
                    retry=int(THROTTLE_SECONDS - (now - recent[0])) + 1,
                )
        user = f.users.get(req.username)
        if user is None or user.disabled or f.passwords.get(req.username) != req.password:
            for scope in scopes:
                f.failures.setdefault(scope, []).append(now)
            raise Abort(grpc.StatusCode.UNAUTHENTICATED, "Wrong username or password.")
        user.last_login_at = int(now)
        return admin_pb2.AuthenticateUserResponse(user=user)

    @_rpc
    def StartSignIn(self, req: Any, actor: str) -> Any:
        token = self.fake.tokens.setdefault(req.username, secrets.token_urlsafe(8))
        return admin_pb2.StartSignInResponse(sign_in_token=token)

    @_rpc
    def CheckSignIn(self, req: Any, actor: str) -> Any:
        user = self.fake.users.get(req.username)
        token = self.fake.tokens.get(req.username)
        if user is None or user.disabled or not token or token != req.sign_in_token:
            raise Abort(
                grpc.StatusCode.UNAUTHENTICATED, "This sign-in has ended.", reason="sign_in_ended"
            )
        return admin_pb2.CheckSignInResponse(user=user)

    @_rpc
    def EndSignIns(self, req: Any, actor: str) -> Any:
        self.fake.tokens[req.username] = secrets.token_urlsafe(8)
        return admin_pb2.EndSignInsResponse(sign_in_token=self.fake.tokens[req.username])

    @_rpc
    def ListSignInLocks(self, req: Any, actor: str) -> Any:
        now = time.time()
        locks = []
        for scope, times in self.fake.failures.items():
            recent = [t for t in times if now - t < THROTTLE_SECONDS]
            username, _, address = scope.rpartition("@")
            if scope.startswith("addr:") or len(recent) < THROTTLE_AFTER:
                continue
            locks.append(
                admin_pb2.SignInLock(
                    username=username,
                    address=address,
                    locked_until=int(recent[0] + THROTTLE_SECONDS),
                    failures=len(recent),
                )
            )
        return admin_pb2.ListSignInLocksResponse(locks=locks)

    @_rpc
    def UnlockUser(self, req: Any, actor: str) -> Any:
        for scope in [s for s in self.fake.failures if s.startswith(req.username + "@")]:
            del self.fake.failures[scope]
        return admin_pb2.UnlockUserResponse()

    @_rpc
    def ListUsers(self, req: Any, actor: str) -> Any:
        return admin_pb2.ListUsersResponse(
            users=[self.fake.users[k] for k in sorted(self.fake.users)]
        )

    @_rpc
    def CreateUser(self, req: Any, actor: str) -> Any:
        if req.username in self.fake.users:
            raise Abort(grpc.StatusCode.ALREADY_EXISTS, "That user exists.", "username")
        if len(req.password) < 8:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Password too short.", "password")
        self.fake.add_user(
            req.username,
            req.password,
            "admin" if req.role == admin_pb2.USER_ROLE_ADMIN else "viewer",
            req.must_change_password,
        )
        return admin_pb2.CreateUserResponse(user=self.fake.users[req.username])

    @_rpc
    def UpdateUser(self, req: Any, actor: str) -> Any:
        user = self.fake.users.get(req.user.username)
        if user is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, "No such user.")
        for path in req.update_mask.paths:
            setattr(user, path, getattr(req.user, path))
        return admin_pb2.UpdateUserResponse(user=user)

    @_rpc
    def SetUserPassword(self, req: Any, actor: str) -> Any:
        user = self.fake.users.get(req.username)
        if user is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, "No such user.")
        if actor == req.username and self.fake.passwords[req.username] != req.current_password:
            raise Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "The current password is wrong.",
                "current_password",
            )
        if req.new_password.lower() == "password123":
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "That password is too common.", "new_password"
            )
        self.fake.passwords[req.username] = req.new_password
        user.must_change_password = req.must_change_password
        self.fake.tokens[req.username] = secrets.token_urlsafe(8)  # ends their sign-ins
        return admin_pb2.SetUserPasswordResponse(user=user)

    # Keys -----------------------------------------------------------------------

    @_rpc
    def CreateKey(self, req: Any, actor: str) -> Any:
        if not req.name.strip():
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "A key needs a name.", "name")
        if any(m == "no-such-model" for m in req.allowed_models):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Unknown model 'no-such-model'.", "allowed_models"
            )
        key, secret = self.fake.add_key(
            req.name,
            limits=req.limits,
            allowed_models=req.allowed_models,
            allowed_tools=req.allowed_tools,
            expires_at=req.expires_at,
            builtin_tools_default=req.builtin_tools_default,
        )
        self.fake.publish(
            admin_pb2.WatchEventsResponse(
                time_ms=int(time.time() * 1000),
                key_changed=admin_pb2.KeyChanged(key=key, action=admin_pb2.KEY_ACTION_CREATED),
            )
        )
        return admin_pb2.CreateKeyResponse(key=key, secret=secret)

    @_rpc
    def ListKeys(self, req: Any, actor: str) -> Any:
        keys = sorted(self.fake.keys.values(), key=lambda k: k.created_at, reverse=True)
        if not req.include_revoked:
            keys = [k for k in keys if not k.revoked_at]
        chunk, token = _page(keys, req.page_token, req.page_size)
        return admin_pb2.ListKeysResponse(keys=chunk, next_page_token=token)

    def _key(self, key_id: str) -> admin_pb2.ApiKey:
        key = self.fake.keys.get(key_id)
        if key is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"No key {key_id}.")
        return key

    @_rpc
    def GetKey(self, req: Any, actor: str) -> Any:
        return admin_pb2.GetKeyResponse(key=self._key(req.key_id))

    @_rpc
    def UpdateKey(self, req: Any, actor: str) -> Any:
        key = self._key(req.key.id)
        for path in req.update_mask.paths:
            if path not in (
                "name",
                "limits",
                "allowed_models",
                "allowed_tools",
                "expires_at",
                "builtin_tools_default",
            ):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Cannot change {path}.", "update_mask"
                )
            if path in ("limits", "builtin_tools_default"):
                getattr(key, path).CopyFrom(getattr(req.key, path))
            elif path in ("allowed_models", "allowed_tools"):
                del getattr(key, path)[:]
                getattr(key, path).extend(getattr(req.key, path))
            else:
                setattr(key, path, getattr(req.key, path))
        return admin_pb2.UpdateKeyResponse(key=key)

    @_rpc
    def RevokeKey(self, req: Any, actor: str) -> Any:
        key = self._key(req.key_id)
        key.revoked_at = key.revoked_at or int(time.time())
        return admin_pb2.RevokeKeyResponse(key=key)

    # Logs and usage -------------------------------------------------------------

    @_rpc
    def ListRequestLogs(self, req: Any, actor: str) -> Any:
        def keep(x: admin_pb2.RequestLog) -> bool:
            return (
                (not req.start_time_ms or x.time_ms >= req.start_time_ms)
                and (not req.end_time_ms or x.time_ms < req.end_time_ms)
                and (not req.key_id or x.key_id == req.key_id)
                and (not req.model or x.model == req.model)
                and (not req.status or x.status == req.status)
                and (not req.endpoint or x.endpoint == req.endpoint)
                and (not req.outcome or x.outcome == req.outcome)
            )

        chunk, token = _page([x for x in self.fake.logs if keep(x)], req.page_token, req.page_size)
        return admin_pb2.ListRequestLogsResponse(logs=chunk, next_page_token=token)

    @_rpc
    def GetRequestLog(self, req: Any, actor: str) -> Any:
        for entry in self.fake.logs:
            if entry.id == req.log_id:
                resp = admin_pb2.GetRequestLogResponse(log=entry)
                if entry.id in self.fake.turns:
                    resp.turn.CopyFrom(self.fake.turns[entry.id])
                return resp
        raise Abort(grpc.StatusCode.NOT_FOUND, f"No request log {req.log_id}.")

    @_rpc
    def GetUsage(self, req: Any, actor: str) -> Any:
        end = req.end_time_ms or int(time.time() * 1000)
        rows = [x for x in self.fake.logs if req.start_time_ms <= x.time_ms < end]
        width = req.bucket_seconds * 1000

        def series(x: admin_pb2.RequestLog) -> tuple[str, str]:
            if req.group_by == admin_pb2.USAGE_GROUPING_KEY:
                return (x.key_id, "")
            if req.group_by == admin_pb2.USAGE_GROUPING_MODEL:
                return ("", x.model)
            return ("", "")

        groups: dict[tuple[str, str, int], list[admin_pb2.RequestLog]] = {}
        for x in rows:
            start = (
                req.start_time_ms + ((x.time_ms - req.start_time_ms) // width) * width
                if width
                else req.start_time_ms
            )
            groups.setdefault((*series(x), start), []).append(x)

        def bucket(
            key_id: str, model: str, start: int, items: list[admin_pb2.RequestLog]
        ) -> admin_pb2.UsageBucket:
            lat = sorted(float(i.latency_ms) for i in items)
            p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
            return admin_pb2.UsageBucket(
                start_time_ms=start,
                key_id=key_id,
                model=model,
                requests=len(items),
                errors=sum(1 for i in items if i.status >= 400),
                input_tokens=sum(i.usage.input_tokens for i in items),
                output_tokens=sum(i.usage.output_tokens for i in items),
                cost_usd=sum(i.usage.cost_usd for i in items),
                latency_p50_ms=statistics.median(lat) if lat else 0.0,
                latency_p95_ms=p95,
            )

        buckets = [bucket(k, m, s, items) for (k, m, s), items in sorted(groups.items())]
        return admin_pb2.GetUsageResponse(
            buckets=buckets, totals=bucket("", "", req.start_time_ms, rows)
        )

    # Config ---------------------------------------------------------------------

    @_rpc
    def GetConfig(self, req: Any, actor: str) -> Any:
        last = self.fake.history[0] if self.fake.history else None
        return admin_pb2.GetConfigResponse(
            config=self.fake.config,
            version=self.fake.version,
            updated_by=last.updated_by if last else "",
            updated_at=last.updated_at if last else 0,
        )

    @_rpc
    def UpdateConfig(self, req: Any, actor: str) -> Any:
        f = self.fake
        if req.expected_version and req.expected_version != f.version:
            raise Abort(grpc.StatusCode.ABORTED, "The configuration changed meanwhile.")
        paths = list(req.update_mask.paths)
        if "max_body_bytes" in paths and req.config.max_body_bytes < 1024:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "max_body_bytes must be at least 1024.",
                "config.max_body_bytes",
            )
        if "pool_size" in paths and req.config.pool_size > 64:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "pool_size must be at most 64.",
                "config.pool_size",
            )
        for path in paths:
            value = getattr(req.config, path)
            if path == "model_aliases":
                f.config.model_aliases.clear()
                f.config.model_aliases.update(dict(value))
            elif path in ("default_allowed_tools", "cors_origins"):
                del getattr(f.config, path)[:]
                getattr(f.config, path).extend(value)
            else:
                setattr(f.config, path, value)
        f.version += 1
        change = admin_pb2.ConfigChange(
            version=f.version,
            updated_by=actor or "service",
            updated_at=int(time.time()),
            changed_fields=paths,
        )
        change.config.CopyFrom(f.config)
        f.history.insert(0, change)
        f.publish(
            admin_pb2.WatchEventsResponse(
                time_ms=int(time.time() * 1000),
                config_changed=admin_pb2.ConfigChanged(
                    version=f.version, updated_by=actor or "service"
                ),
            )
        )
        return admin_pb2.UpdateConfigResponse(config=f.config, version=f.version)

    @_rpc
    def ListConfigHistory(self, req: Any, actor: str) -> Any:
        chunk, token = _page(self.fake.history, req.page_token, req.page_size)
        return admin_pb2.ListConfigHistoryResponse(changes=chunk, next_page_token=token)

    # Sessions -------------------------------------------------------------------

    @_rpc
    def ListAllSessions(self, req: Any, actor: str) -> Any:
        items = [s for s in self.fake.sessions if not req.key_id or s.key_id == req.key_id]
        chunk, token = _page(items, req.page_token, req.page_size)
        return admin_pb2.ListAllSessionsResponse(sessions=chunk, next_page_token=token)

    @_rpc
    def GetSessionDetail(self, req: Any, actor: str) -> Any:
        for s in self.fake.sessions:
            if s.session.id == req.session_id:
                turns = [t for t in self.fake.turns.values() if t.session_id == req.session_id]
                return admin_pb2.GetSessionDetailResponse(
                    session=s,
                    turns=sorted(turns, key=lambda t: t.created_at),
                    files=self.fake.files.get(req.session_id, []),
                )
        raise Abort(grpc.StatusCode.NOT_FOUND, f"No session {req.session_id}.")

    # Events ---------------------------------------------------------------------

    async def WatchEvents(
        self, req: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[admin_pb2.WatchEventsResponse]:
        try:
            self.fake.check("WatchEvents", context)
        except Abort as error:
            await context.abort(error.code, error.message, trailing_metadata=error.metadata())
            return
        queue: asyncio.Queue[admin_pb2.WatchEventsResponse] = asyncio.Queue()
        self.fake.watchers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.fake.watchers.remove(queue)


# Demo data ----------------------------------------------------------------------

DIFF = """--- a/fib.py
+++ b/fib.py
@@ -1,3 +1,6 @@
 def fib(n):
-    pass
+    a, b = 0, 1
+    for _ in range(n):
+        a, b = b, a + b
+    return a
"""


def seed(fake: FakeAdmin, now: float | None = None) -> dict[str, str]:
    """Fills the fake with realistic data; returns ids the tests refer to."""
    now = now or time.time()
    prod, _ = fake.add_key(
        "production",
        limits=admin_pb2.KeyLimits(
            requests_per_minute=60,
            tokens_per_minute=100_000,
            max_concurrent=4,
            budget_usd=50,
            budget_period=admin_pb2.BUDGET_PERIOD_MONTH,
        ),
        usage=admin_pb2.KeyUsage(
            requests_24h=42, tokens_24h=61_200, cost_usd_period=3.12, cost_usd_total=18.4
        ),
        last_used_at=int(now) - 300,
    )
    ci, _ = fake.add_key(
        "ci-readonly",
        allowed_tools=["Read", "Grep", "Glob"],
        allowed_models=["claude-sonnet-4-5"],
        expires_at=int(now) + 20 * 86400,
        usage=admin_pb2.KeyUsage(
            requests_24h=12, tokens_24h=8_100, cost_usd_period=0.4, cost_usd_total=0.9
        ),
        last_used_at=int(now) - 4000,
    )
    old, _ = fake.add_key("old-laptop", revoked_at=int(now) - 86400)
    models = ["claude-sonnet-4-5", "claude-opus-4-1"]
    for i in range(48):
        key = prod if i % 3 else ci
        status = 200 if i % 11 else (429 if i % 2 else 500)
        fake.add_log(
            time_ms=int((now - i * 1700 - 60) * 1000),
            key_id=key.id,
            key_name=key.name,
            endpoint="/v1/chat/completions" if i % 4 else "/v1/responses",
            model=models[i % 5 == 0],
            status=status,
            latency_ms=800 + (i * 137) % 4000,
            time_to_first_token_ms=300 + (i * 53) % 900,
            stream=bool(i % 2),
            usage=events_pb2.Usage(
                input_tokens=900 + i * 13,
                output_tokens=200 + i * 7,
                cost_usd=0.004 + (i % 7) * 0.003,
            ),
            error=""
            if status == 200
            else ("Rate limit exceeded" if status == 429 else "model_unavailable"),
        )
    session_id = "sess_demo1"
    xss = fake.add_log(
        time_ms=int((now - 30) * 1000),
        key_id=prod.id,
        key_name=prod.name,
        endpoint="/v1/chat/completions",
        model="claude-sonnet-4-5",
        status=200,
        latency_ms=2300,
        time_to_first_token_ms=640,
        session_id=session_id,
        turn_id="turn_1",
        tools_used=["Write", "Bash"],
        files_changed=1,
        request_id="req_abc123",
        request_body='{"model": "claude-sonnet-4-5", "messages": [{"role": "user", '
        '"content": "<script>alert(1)</script> write fib.py"}]}',
        response_body="Created fib.py <img src=x onerror=alert(2)>",
        usage=events_pb2.Usage(
            input_tokens=1520, output_tokens=410, cache_read_input_tokens=800, cost_usd=0.0213
        ),
    )
    turn = agent_pb2.Turn(
        id="turn_1",
        session_id=session_id,
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=int(now) - 32,
        completed_at=int(now) - 30,
        output_text="Created fib.py <img src=x onerror=alert(2)>",
        tool_uses=[
            events_pb2.ToolUse(
                id="tu1",
                name="Write",
                summary="Write fib.py",
                input_json='{"file_path": "fib.py", "content": "def fib(n): ..."}',
            ),
            events_pb2.ToolUse(
                id="tu2",
                name="Bash",
                summary="Bash: python -c 'import fib'",
                input_json='{"command": "python -c \'import fib\'"}',
            ),
        ],
        tool_results=[
            events_pb2.ToolResult(tool_use_id="tu1", output_excerpt="File written"),
            events_pb2.ToolResult(
                tool_use_id="tu2", is_error=True, output_excerpt="</pre><script>alert(3)</script>"
            ),
        ],
        files=[
            events_pb2.FileChange(
                kind=events_pb2.FILE_CHANGE_KIND_MODIFIED, path="fib.py", size_bytes=96, diff=DIFF
            )
        ],
        usage=xss.usage,
    )
    turn.input.add(role=1).content.add(text="<script>alert(1)</script> write fib.py")
    fake.turns[xss.id] = turn
    fake.sessions.append(
        admin_pb2.AdminSession(
            key_id=prod.id,
            session=sessions_pb2.Session(
                id=session_id,
                model="claude-sonnet-4-5",
                created_at=int(now) - 32,
                last_active_at=int(now) - 30,
                turn_count=1,
                last_turn_id="turn_1",
                usage=xss.usage,
                live=True,
            ),
        )
    )
    fake.files[session_id] = [
        sessions_pb2.WorkspaceFile(path="fib.py", size_bytes=96, modified_at=int(now) - 30)
    ]
    change = admin_pb2.ConfigChange(version=1, updated_by="service", updated_at=int(now) - 86400)
    change.config.CopyFrom(fake.config)
    fake.history.append(change)
    return {"prod": prod.id, "ci": ci.id, "old": old.id, "xss_log": xss.id, "session": session_id}
