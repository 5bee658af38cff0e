"""Builds and runs the grpc.aio core server: our services, grpc.health.v1
(SERVING only while the database answers) and server reflection."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import time
from datetime import UTC, datetime
from http.server import HTTPServer
from pathlib import Path

import claude_agent_sdk
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from ccapi_client import telemetry
from ccapi_client.channel import MESSAGE_SIZE_OPTIONS
from ccapi_client.status_table import http_status
from claudecode.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    files_pb2,
    files_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
)
from core_service import live_config, metrics, recovery, request_context, request_log, usage
from core_service.agent.options import ProcessShape
from core_service.agent.pool import ProcessPool
from core_service.agent.process import ProcessFactory
from core_service.agent.workspace_layout import WorkspaceLayout, reachable_cli
from core_service.attachment_log import AttachmentLog
from core_service.config import CoreConfig, machine_capacity
from core_service.db.engine import instrument, make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.domain.live_config import LiveConfig
from core_service.file_store import FileStore
from core_service.interceptors import CoreInterceptor
from core_service.keys import KeyStore
from core_service.limits import RENEW_SECONDS, LimitGate
from core_service.live_config import LiveConfigStore
from core_service.machine import MIB, PROCESS_PSS_BYTES
from core_service.model_catalog import ModelCatalog
from core_service.request_context import RequestContext
from core_service.servicers.admin import AdminServicer
from core_service.servicers.agent import AgentServicer
from core_service.servicers.files import FileServicer
from core_service.servicers.models import ModelServicer
from core_service.servicers.runtime import RuntimeServicer
from core_service.servicers.sessions import SessionServicer
from core_service.store import SessionStore
from core_service.turns.admission import Admissions
from core_service.turns.attachments import Attachments
from core_service.turns.background import BackgroundLimits, BackgroundTurns
from core_service.turns.background_journal import Journal
from core_service.turns.capacity import Capacity, Limits
from core_service.turns.compaction import Compactions, CompactionTokens, compaction_secret
from core_service.turns.lifecycle import SessionLifecycle
from core_service.turns.planning import Planner
from core_service.turns.registry import ProcessRegistry
from core_service.turns.service import TurnService
from core_service.users import UserStore

log = logging.getLogger("ccapi.core")

SERVICE_NAMES = (
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name,
    files_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
)
HEALTH_CHECK_SECONDS = 5.0
CONFIG_POLL_SECONDS = 2.0
DB_THREADS = 32
# Where a copy of Claude Code goes when the agents' uids cannot reach the
# bundled binary; shared by every core on this host.
SHARED_CLI_DIR = Path("/var/lib/ccapi/bin")
RETENTION_SECONDS = 600.0


class Core:
    """The core's parts, wired together."""

    def __init__(
        self, config: CoreConfig, metrics_settings: metrics.ListenerSettings | None = None
    ) -> None:
        self.config = config
        self.metrics_settings = metrics_settings or metrics.ListenerSettings.from_env()
        self.metrics = metrics.CoreMetrics(self.metrics_settings.top_keys)
        engine = make_engine(config.database_url)
        instrument(engine, self.metrics.observe_db)
        db = make_sessionmaker(engine)
        self.engine = engine
        self.keys = KeyStore(db)
        self.users = UserStore(db)
        self.store = SessionStore(db)
        self.live = LiveConfigStore(db, live_config.defaults(config))
        self.files = FileStore(
            db, config.data_dir / "files", lambda: live_config.file_policy(self.live.current.config)
        )
        self.attachment_log = AttachmentLog(db)
        self.catalog = ModelCatalog(extra_aliases=config.model_aliases)
        # Crash recovery: this process's turns, leases and journal carry its id.
        self.instance = recovery.Instance.new()
        journal_dir = config.data_dir / "request-log-journal"
        self.store.owner = self.instance.id
        self.gate = LimitGate(engine, db, owner=self.instance.id)
        self.log_writer = request_log.RequestLogWriter(
            db,
            journal=request_log.Journal(journal_dir, self.instance.id),
            # Every row of the request log is counted as it is queued.
            on_submit=self.metrics.observe_entry,
        )
        self.recovery = recovery.Recovery(
            db,
            self.gate,
            self.log_writer,
            journal_dir,
            self.instance,
            http_status,
            running=lambda: self.registry.running_turn_ids(),
        )
        self.log_query = request_log.RequestLogQuery(db)
        self._usage = functools.partial(usage.usage, db)
        base = config.agent_uid_base
        next_uid = (lambda: self.store.new_agent_uid(base)) if base > 0 else None
        self.layout = WorkspaceLayout(config, next_uid)
        self.factory = ProcessFactory(config, self.layout)
        default_shape = ProcessShape(model=self.catalog.resolve("sonnet").id)
        self.capacity = Capacity(capacity_limits(live_config.defaults(config)))
        self.pool = ProcessPool(
            self.factory,
            self.layout,
            default_shape,
            config.pool_size,
            config.pool_idle_seconds,
            starts=self.capacity.starts.start,
        )
        self.registry = ProcessRegistry(
            self.factory, self.pool, config.session_idle_seconds, self.capacity
        )
        self.lifecycle = SessionLifecycle(self.registry, self.store, self.layout)
        self.turns = TurnService(
            config,
            Admissions(config.claude_env, self.catalog, self.gate),
            Planner(self.store, self.layout, self.pool),
            self.registry,
            self.store,
            self.layout,
            Attachments(self.files, self.attachment_log),
        )
        self.turns.on_process = self.metrics.observe_process
        self.compactions = Compactions(
            self.turns, self.store, CompactionTokens(compaction_secret(config))
        )
        self.background = BackgroundTurns(
            self.turns,
            self.registry,
            self.store,
            Journal(db, BackgroundLimits.from_env().max_events),
            self._log_turn,
            BackgroundLimits.from_env(),
        )
        self.metrics.watch(metrics.CoreGauges(self.registry, self.pool))
        self.metrics_server: HTTPServer | None = None
        self.health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        self.server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None
        self._applied_version = -1

    async def start(self) -> int:
        """Starts serving; returns the bound port."""
        self.layout.prepare()
        self.files.prepare()
        if self.config.agent_uid_base > 0:
            bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
            self.factory.cli_path = await asyncio.to_thread(reachable_cli, bundled, SHARED_CLI_DIR)
        await asyncio.to_thread(self.live.refresh)
        self._apply_live_config()
        # What a dead core left is finished before this one takes requests.
        await asyncio.to_thread(self.recovery.register)
        await asyncio.to_thread(self.recovery.recover, True)
        await asyncio.to_thread(self.background.sweep)
        interceptor = CoreInterceptor(
            self.keys,
            self.users,
            admin_token=self.config.admin_token,
            log_sink=self._log_request,
            default_tools=lambda: tuple(self.live.current.config.default_allowed_tools),
        )
        # The trace interceptor goes first: the call's span (its parent from the
        # caller's traceparent metadata) is current in ours and in the servicer.
        traces = [] if telemetry.sdk_disabled() else [aio_server_interceptor()]  # type: ignore[no-untyped-call]
        server = grpc.aio.server(interceptors=[*traces, interceptor], options=MESSAGE_SIZE_OPTIONS)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(
            AgentServicer(self.turns, self.store, self.compactions, self.background), server
        )
        models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.catalog), server)
        sessions_pb2_grpc.add_SessionServiceServicer_to_server(
            SessionServicer(self.registry, self.lifecycle, self.store, self.layout), server
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(
                self.keys,
                self.users,
                self.live,
                self.catalog,
                self.log_query,
                self.store,
                self.registry,
                self.layout,
                self._usage,
                self.gate,
                self.attachment_log,
            ),
            server,
        )
        runtime_pb2_grpc.add_RuntimeServiceServicer_to_server(
            RuntimeServicer(self.live, self.keys, self.log_writer), server
        )
        files_pb2_grpc.add_FileServiceServicer_to_server(FileServicer(self.files), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port: int = server.add_insecure_port(f"{self.config.grpc_host}:{self.config.grpc_port}")
        await server.start()
        self.server = server
        self.log_writer.start()
        self.metrics_server = metrics.start_listener(self.metrics.registry, self.metrics_settings)
        self.turns.start()
        self._tasks = [
            asyncio.create_task(self._watch_database()),
            asyncio.create_task(self._watch_config()),
            asyncio.create_task(self._enforce_retention()),
            asyncio.create_task(self._renew_leases()),
            asyncio.create_task(self.background.sweep_forever()),
            asyncio.create_task(self.background.watch_cancels_forever()),
        ]
        # Apart: it beats until every turn has ended (see stop).
        self._heartbeat = asyncio.create_task(self.recovery.run_forever())
        log.info("core listening", extra={"port": port, "data_dir": str(self.config.data_dir)})
        self._log_capacity()
        return port

    def _log_capacity(self) -> None:
        sized = machine_capacity()
        live = self.live.current.config
        log.info(
            "capacity",
            extra={
                "max_live_processes": live.max_live_processes,
                "max_running_turns": live.max_running_turns,
                "max_queued_turns": live.max_queued_turns,
                "max_queue_wait_seconds": live.max_queue_wait_seconds,
                "max_concurrent_starts": live.max_concurrent_starts,
                "cores": sized.cores,
                "memory_available_mib": sized.available_bytes // MIB,
                "memory_budget_mib": sized.budget_bytes // MIB,
                "process_pss_mib": PROCESS_PSS_BYTES // MIB,
            },
        )

    def _log_request(
        self, call: RequestContext, code: grpc.StatusCode, reason: str, error: str
    ) -> None:
        """One request-log row per API request; written off the request path."""
        if call.reply.detached:
            return  # a background turn writes its row when it ends (_log_turn)
        self._log_turn(call, code, reason, error)

    def _log_turn(
        self, call: RequestContext, code: grpc.StatusCode, reason: str, error: str
    ) -> None:
        bodies = self.live.current.config.log_bodies
        if code != grpc.StatusCode.OK:
            self.metrics.observe_failure(reason, error)
        self.log_writer.submit(request_context.log_entry(call, code, reason, error, bodies))

    def _apply_live_config(self) -> None:
        """Makes the newest live configuration take effect in this process."""
        self._applied_version = self.live.current.version
        config = self.live.current.config
        self.catalog.set_extra_aliases(dict(config.model_aliases))
        logging.getLogger().setLevel(config.log_level.upper())
        self.factory.max_retries = config.claude_max_retries
        self.capacity.apply(capacity_limits(config))
        self.registry.trim()  # a lowered cap evicts idle processes now
        self.pool.resize(config.pool_size)

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(CONFIG_POLL_SECONDS)
            try:
                await asyncio.to_thread(self.live.refresh)
                # Compare with what this process applied: an UpdateConfig served
                # here already moved `current` on.
                if self.live.current.version != self._applied_version:
                    self._apply_live_config()
                    log.info(
                        "live configuration applied", extra={"version": self.live.current.version}
                    )
            except Exception:
                log.exception("could not refresh the live configuration")

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await asyncio.to_thread(self.gate.renew_leases)
            except Exception:
                log.exception("could not renew concurrency leases")

    async def _enforce_retention(self) -> None:
        while True:
            try:
                config = self.live.current.config
                now = time.time()
                cutoff_ms = int((now - config.log_retention_days * 86400) * 1000)
                await asyncio.to_thread(self.log_query.purge_older_than, cutoff_ms)
                await asyncio.to_thread(self.gate.purge_windows, int(now // 60) - 1440)
                await asyncio.to_thread(self.files.purge_expired)
                before = datetime.fromtimestamp(now - config.workspace_retention_days * 86400, UTC)
                await self.lifecycle.expire_inactive_since(before)
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(RETENTION_SECONDS)

    async def _watch_database(self) -> None:
        """Readiness follows the database: NOT_SERVING while it does not answer."""
        while True:
            try:
                await asyncio.to_thread(self.store.ping)
                status = health_pb2.HealthCheckResponse.SERVING
            except Exception:
                log.warning("database check failed")
                status = health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", *SERVICE_NAMES):
                await _maybe_await(self.health.set(name, status))
            await asyncio.sleep(HEALTH_CHECK_SECONDS)

    async def stop(self) -> None:
        """Graceful stop: running turns get the grace period, then everything ends."""
        for task in self._tasks:
            task.cancel()
        for name in ("", *SERVICE_NAMES):
            await _maybe_await(self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING))
        grace = self.config.shutdown_grace_seconds
        self.background.stopping()
        stopping = self.registry.shutdown(grace)
        if self.server is not None:
            await asyncio.gather(stopping, self.server.stop(grace + 2))
        else:
            await stopping
        await self.background.stop()
        # Only now: a core still winding up its turns must not look dead to the
        # others, or they would recover (fail) turns it is still finishing.
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        # Every request-log row queued so far is written before we exit.
        await self.log_writer.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.recovery.unregister)
        await metrics.stop_listener(self.metrics_server)
        self.engine.dispose()


def capacity_limits(config: LiveConfig) -> Limits:
    return Limits(
        max_live_processes=config.max_live_processes,
        max_running_turns=config.max_running_turns,
        max_queued_turns=config.max_queued_turns,
        max_queue_wait_seconds=float(config.max_queue_wait_seconds),
        max_concurrent_starts=config.max_concurrent_starts,
    )


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value


async def serve(config: CoreConfig) -> None:
    """Runs the core until SIGTERM or SIGINT."""
    # Every database call runs in a worker thread; asyncio's default of
    # cpu + 4 threads lets a burst of requests starve the request-log writer.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="ccapi-db")
    )
    telemetry.setup_tracing("ccapi-core")
    await asyncio.to_thread(upgrade, config.database_url)
    core = Core(config)
    await core.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("core stopping")
    await core.stop()
    telemetry.shutdown_tracing()
    log.info("core stopped")
