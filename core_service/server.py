"""Builds and runs the grpc.aio core server: our services, grpc.health.v1
(SERVING only while the database answers) and server reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from claudecode.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
)
from core_service.agent.options import ProcessShape
from core_service.agent.pool import ProcessPool
from core_service.agent.process import ProcessFactory
from core_service.agent.workspace import WorkspaceLayout
from core_service.config import CoreConfig
from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.interceptors import CoreInterceptor
from core_service.keys import KeyStore
from core_service.model_catalog import ModelCatalog
from core_service.servicers.agent import AgentServicer
from core_service.servicers.models import ModelServicer
from core_service.servicers.sessions import SessionServicer
from core_service.session_manager import SessionManager
from core_service.store import SessionStore

log = logging.getLogger("ccapi.core")

SERVICE_NAMES = (
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
)
HEALTH_CHECK_SECONDS = 5.0


class Core:
    """The core's parts, wired together."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        engine = make_engine(config.database_url)
        db = make_sessionmaker(engine)
        self.engine = engine
        self.keys = KeyStore(db)
        self.store = SessionStore(db)
        self.catalog = ModelCatalog(extra_aliases=config.model_aliases)
        base = config.agent_uid_base
        next_uid = (lambda: base + self.store.next_uid_index()) if base > 0 else None
        self.layout = WorkspaceLayout(config, next_uid)
        factory = ProcessFactory(config, self.layout)
        default_shape = ProcessShape(model=self.catalog.resolve("sonnet").id)
        pool = ProcessPool(
            factory, self.layout, default_shape, config.pool_size, config.pool_idle_seconds
        )
        self.sessions = SessionManager(config, self.store, self.catalog, factory, self.layout, pool)
        self.health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        self.server: grpc.aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Starts serving; returns the bound port."""
        self.layout.prepare()
        server = grpc.aio.server(interceptors=[CoreInterceptor(self.keys)])
        agent_pb2_grpc.add_AgentServiceServicer_to_server(
            AgentServicer(self.sessions, self.store), server
        )
        models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.catalog), server)
        sessions_pb2_grpc.add_SessionServiceServicer_to_server(
            SessionServicer(self.sessions, self.store, self.layout), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port: int = server.add_insecure_port(f"{self.config.grpc_host}:{self.config.grpc_port}")
        await server.start()
        self.server = server
        self.sessions.start()
        self._health_task = asyncio.create_task(self._watch_database())
        log.info("core listening", extra={"port": port, "data_dir": str(self.config.data_dir)})
        return port

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
        if self._health_task is not None:
            self._health_task.cancel()
        for name in ("", *SERVICE_NAMES):
            await _maybe_await(self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING))
        grace = self.config.shutdown_grace_seconds
        stopping = self.sessions.shutdown(grace)
        if self.server is not None:
            await asyncio.gather(stopping, self.server.stop(grace + 2))
        else:
            await stopping
        self.engine.dispose()


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value


async def serve(config: CoreConfig) -> None:
    """Runs the core until SIGTERM or SIGINT."""
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
    log.info("core stopped")
