"""Dashboard queries at a million request-log rows, on SQLite and PostgreSQL.

    python -m tests.usage_bench [--rows N] [--engine sqlite|postgresql|all] [--json]

`run(url, rows)` loads `rows` synthetic rows spread over the last 7 days into
a migrated database (bulk executemany on SQLite, COPY on PostgreSQL) and
times the queries the admin site's dashboard and log pages run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from claudecode.v1 import admin_pb2
from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.request_log import LogFilters, RequestLogQuery
from core_service.usage import usage

DAY_MS = 24 * 3600 * 1000
SPAN_MS = 7 * DAY_MS
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "gpt-4o", "gpt-4o-mini")
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/sessions")
KEYS = 50

COLUMNS = (
    "id", "time_ms", "key_id", "key_name", "endpoint", "model", "status", "outcome",
    "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "cost_usd", "session_id", "turn_id", "tools_used",
    "files_changed", "error", "stream", "request_id", "request_body", "response_body",
)  # fmt: skip


def synthetic_rows(rows: int, now_ms: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """`rows` plausible request-log rows spread over the 7 days before now_ms."""
    rnd = random.Random(seed)
    keys = [(f"key_{i:08x}", f"team-{i}") for i in range(KEYS)]
    start = now_ms - SPAN_MS
    step = SPAN_MS / max(rows, 1)
    for i in range(rows):
        t = start + int(i * step) + rnd.randrange(0, 1000)
        key_id, key_name = keys[int(rnd.paretovariate(1.2)) % KEYS]
        roll = rnd.random()
        if roll < 0.03:
            status, outcome, error = 500, "error", "upstream error"
        elif roll < 0.04:
            status, outcome, error = 499, "cancelled", "cancelled by client"
        elif roll < 0.05:
            status, outcome, error = 429, "error", "rate limit exceeded"
        else:
            status, outcome, error = 200, "ok", ""
        latency = int(rnd.lognormvariate(7.5, 0.8))
        inp = rnd.randrange(50, 20_000)
        out = rnd.randrange(1, 4_000)
        yield (
            f"log_{t & 0xFFFFFFFFFFFF:012x}{rnd.getrandbits(64):016x}",
            t,
            key_id,
            key_name,
            ENDPOINTS[i % 3],
            MODELS[rnd.randrange(len(MODELS))],
            status,
            outcome,
            latency,
            latency // 4,
            inp,
            out,
            inp // 2,
            0,
            round((inp * 3 + out * 15) / 1_000_000, 6),
            "",
            "",
            "[]",
            0,
            error,
            i % 2 == 0,
            "",
            "",
            "",
        )


def load(url: str, rows: int, now_ms: int) -> float:
    """Bulk-loads synthetic rows; returns seconds taken (ANALYZE included)."""
    engine = make_engine(url)
    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            copy_sql = f"COPY request_logs ({', '.join(COLUMNS)}) FROM STDIN"
            with cur.copy(copy_sql) as copy:
                for row in synthetic_rows(rows, now_ms):
                    copy.write_row(row)
            raw.commit()
            cur.execute("ANALYZE request_logs")
            raw.commit()
        else:
            placeholders = ", ".join("?" for _ in COLUMNS)
            sql = f"INSERT INTO request_logs ({', '.join(COLUMNS)}) VALUES ({placeholders})"
            gen = synthetic_rows(rows, now_ms)
            while True:
                chunk = [row for _, row in zip(range(50_000), gen, strict=False)]
                if not chunk:
                    break
                cur.executemany(sql, chunk)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        cur.close()
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - began


def _timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def run(database_url: str, rows: int = 1_000_000) -> dict[str, float]:
    """Migrates an empty database, loads `rows` rows and times the dashboard
    queries (best of three, seconds)."""
    upgrade(database_url)
    now_ms = int(time.time() * 1000)
    results: dict[str, float] = {"load_s": load(database_url, rows, now_ms)}
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    query = RequestLogQuery(sessions)
    day_start = now_ms - DAY_MS
    try:
        results["usage_24h_by_model_hourly_s"] = _timed(
            lambda: usage(sessions, day_start, now_ms, 3600, admin_pb2.USAGE_GROUPING_MODEL)
        )
        results["usage_24h_by_key_hourly_s"] = _timed(
            lambda: usage(sessions, day_start, now_ms, 3600, admin_pb2.USAGE_GROUPING_KEY)
        )
        results["usage_24h_totals_s"] = _timed(
            lambda: usage(sessions, day_start, now_ms, 0, admin_pb2.USAGE_GROUPING_NONE)
        )
        results["usage_7d_by_model_daily_s"] = _timed(
            lambda: usage(sessions, now_ms - SPAN_MS, now_ms, 86400, admin_pb2.USAGE_GROUPING_MODEL)
        )
        key_filter = LogFilters(key_id="key_00000003")
        results["logs_first_page_key_filter_s"] = _timed(lambda: query.list(key_filter, 50, ""))

        def third_page() -> None:
            _, token = query.list(key_filter, 50, "")
            _, token = query.list(key_filter, 50, token)
            query.list(key_filter, 50, token)

        results["logs_third_page_key_filter_s"] = _timed(third_page)
        results["logs_first_page_no_filter_s"] = _timed(lambda: query.list(LogFilters(), 50, ""))
        results["logs_first_page_model_status_filter_s"] = _timed(
            lambda: query.list(LogFilters(model="gpt-4o", status=500), 50, "")
        )
    finally:
        engine.dispose()
    return results


def _sqlite(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="ccapi-usage-bench-") as tmp:
        return run(f"sqlite:///{Path(tmp) / 'bench.db'}", rows)


def _postgresql(rows: int) -> dict[str, float]:
    from tests.pg import postgres_server

    with postgres_server() as server:
        return run(server.url, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)))
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    engines = ("sqlite", "postgresql") if args.engine == "all" else (args.engine,)
    results: dict[str, dict[str, float]] = {}
    for name in engines:
        print(f"{name}: loading {args.rows:,} rows ...", file=sys.stderr, flush=True)
        results[name] = _sqlite(args.rows) if name == "sqlite" else _postgresql(args.rows)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    metrics = list(next(iter(results.values())))
    print(f"request_logs usage bench, {args.rows:,} rows (seconds, best of 3)")
    print(f"{'query':42}" + "".join(f"{name:>12}" for name in engines))
    for metric in metrics:
        cells = "".join(f"{results[name][metric]:>12.3f}" for name in engines)
        print(f"{metric.removesuffix('_s'):42}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
