"""Per-request cost of what the core does around a turn for keys: look the key
up, count it against its limits, give the slot back, queue the log row.

Measured on the real components and a real database (SQLite file; PostgreSQL
too when its binaries are here), then set against the turn times `make bench`
measured in the same run: the ratio says how much of a request is accounting.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.keys import KeyLimits, KeySpec, KeyStore
from core_service.limits import LimitGate
from core_service.request_log import LogEntry, RequestLogWriter

REQUESTS = 300


async def _measure(url: str, requests: int) -> float:
    """Median seconds of one request's accounting."""
    upgrade(url)
    engine = make_engine(url)
    db = make_sessionmaker(engine)
    keys, gate = KeyStore(db), LimitGate(engine, db)
    writer = RequestLogWriter(db)
    writer.start()
    # Every limit on, none reached: the longest path a let-through request takes.
    limits = KeyLimits(rpm=10**9, tpm=10**9, max_concurrent=10**6, budget_usd=10**6)
    _, secret = keys.create("bench", spec=KeySpec(name="bench", limits=limits))
    samples = []
    for i in range(requests):
        started = time.perf_counter()
        key = await asyncio.to_thread(keys.authenticate, secret)
        assert key is not None
        admission = await asyncio.to_thread(gate.admit, key)
        await asyncio.to_thread(gate.release, admission, 120, 0.001)
        writer.submit(
            LogEntry(
                key_id=key.id,
                endpoint="/v1/chat/completions",
                model="bench",
                request_body=f"request {i}",
                response_body="answer",
            )
        )
        samples.append(time.perf_counter() - started)
    await writer.close()
    engine.dispose()
    return statistics.median(samples)


def measure(requests: int = REQUESTS) -> dict[str, float]:
    """Median accounting seconds per request, by database engine."""
    results: dict[str, float] = {}
    directory = Path(tempfile.mkdtemp(prefix="ccapi-bench-acct-"))
    try:
        results["sqlite"] = asyncio.run(_measure(f"sqlite:///{directory / 'bench.db'}", requests))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        from tests.pg import PostgresServer, PostgresUnavailable
    except ImportError:
        return results
    try:
        server = PostgresServer()
    except PostgresUnavailable:
        return results
    server.start()
    try:
        results["postgresql"] = asyncio.run(_measure(server.create_database("bench"), requests))
    finally:
        server.stop()
    return results
