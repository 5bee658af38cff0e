"""Engine and session factory for any SQLAlchemy URL (SQLite by default)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import trace
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _prepare_sqlite_file(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if not path or path == ":memory:":
        return
    db_path = Path(path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if not db_path.exists():
        # The agent must never read the database: owner-only from the start.
        db_path.touch(mode=0o600)
    os.chmod(db_path, 0o600)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def instrument(engine: Engine, record_seconds: Callable[[str, float], None]) -> None:
    """Times every statement (`record_seconds(statement, seconds)`: the core's
    database latency histogram) and, when traces are recorded, gives each one
    a span (OpenTelemetry's SQLAlchemy instrumentation)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info.setdefault("ccapi_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        started = conn.info.get("ccapi_started")
        if started:
            record_seconds(statement, time.perf_counter() - started.pop())

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        started = context.connection.info.get("ccapi_started") if context.connection else None
        if started:
            started.pop()

    if _tracing_on():
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # Its declared range ends below SQLAlchemy 2.1, which it handles all the same.
        SQLAlchemyInstrumentor().instrument(
            engine=engine, enable_commenter=False, skip_dep_check=True
        )


def _tracing_on() -> bool:
    # Spans are recorded unless the provider samples nothing (tracing off).
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and provider.sampler is not ALWAYS_OFF
