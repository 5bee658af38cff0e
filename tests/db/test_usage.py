"""Usage aggregates on a small known dataset, on both engines and with each
way of computing percentiles."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from claudecode.v1 import admin_pb2
from core_service.db.models import RequestLogRecord
from core_service.request_log import LogEntry, RequestLogWriter
from core_service.usage import MAX_BUCKETS, usage

HOUR = 3_600_000
START = 1_700_000_000_000
END = START + 3 * HOUR

# (bucket or time offset, key, model, latency, outcome, input, output, cost)
Row = tuple[int, str, str, int, str, int, int, float]
ROWS: list[Row] = [
    (0, "a", "m1", 100, "ok", 10, 1, 0.01),
    (0, "a", "m1", 400, "error", 10, 1, 0.01),
    (0, "a", "m1", 300, "ok", 10, 1, 0.01),
    (0, "a", "m1", 200, "ok", 10, 1, 0.01),
    (0, "b", "m2", 1000, "ok", 100, 50, 0.5),
    (0, "b", "m1", 700, "ok", 5, 5, 0.05),
    (2, "a", "m2", 50, "cancelled", 1, 2, 0.001),
    (2, "a", "m2", 60, "ok", 1, 2, 0.001),
    (2, "b", "m2", 20, "ok", 3, 4, 0.002),
]


def pcont(values: list[int], p: float) -> float:
    """percentile_cont, written out."""
    ordered = sorted(values)
    pos = p * (len(ordered) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _seed(sessions: sessionmaker[Session]) -> None:
    entries = [
        LogEntry(
            time_ms=START + b * HOUR + i * 1000,
            key_id=key,
            model=model,
            latency_ms=latency,
            outcome=outcome,
            status=200 if outcome == "ok" else 500,
            input_tokens=inp,
            output_tokens=out,
            cost_usd=cost,
        )
        for i, (b, key, model, latency, outcome, inp, out, cost) in enumerate(ROWS)
    ]
    # Outside the range on both ends: never counted.
    entries.append(LogEntry(time_ms=START - 1, key_id="a", model="m1", latency_ms=9999))
    entries.append(LogEntry(time_ms=END, key_id="a", model="m1", latency_ms=9999))
    writer = RequestLogWriter(sessions)
    with sessions() as session, session.begin():
        session.execute(sa.insert(RequestLogRecord), [writer._row(e) for e in entries])


def _expect(rows: Sequence[Row], start_ms: int) -> admin_pb2.UsageBucket:
    latencies = [r[3] for r in rows]
    return admin_pb2.UsageBucket(
        start_time_ms=start_ms,
        requests=len(rows),
        errors=sum(1 for r in rows if r[4] != "ok"),
        input_tokens=sum(r[5] for r in rows),
        output_tokens=sum(r[6] for r in rows),
        cost_usd=sum(r[7] for r in rows),
        latency_p50_ms=pcont(latencies, 0.5),
        latency_p95_ms=pcont(latencies, 0.95),
    )


def _same(got: admin_pb2.UsageBucket, want: admin_pb2.UsageBucket) -> None:
    assert (got.start_time_ms, got.key_id, got.model) == (
        want.start_time_ms,
        want.key_id,
        want.model,
    )
    assert (got.requests, got.errors, got.input_tokens, got.output_tokens) == (
        want.requests,
        want.errors,
        want.input_tokens,
        want.output_tokens,
    )
    assert got.cost_usd == pytest.approx(want.cost_usd)
    assert got.latency_p50_ms == pytest.approx(want.latency_p50_ms)
    assert got.latency_p95_ms == pytest.approx(want.latency_p95_ms)


STRATEGIES = ["auto", "window"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hourly_by_key(sessions: sessionmaker[Session], strategy: str) -> None:
    _seed(sessions)
    buckets, totals = usage(
        sessions, START, END, 3600, admin_pb2.USAGE_GROUPING_KEY, strategy=strategy
    )
    expected = []
    for key in ("a", "b"):
        for b in (0, 1, 2):
            rows = [r for r in ROWS if r[1] == key and r[0] == b]
            if rows:
                bucket = _expect(rows, START + b * HOUR)
                bucket.key_id = key
                expected.append(bucket)
    assert len(buckets) == len(expected) == 4
    for got, want in zip(buckets, expected, strict=True):
        _same(got, want)
    _same(totals, _expect(list(ROWS), START))
    # Spot checks against hand-computed values: key a, hour 0 is 100..400.
    assert buckets[0].latency_p50_ms == pytest.approx(250.0)
    assert buckets[0].latency_p95_ms == pytest.approx(385.0)
    assert buckets[0].errors == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hourly_by_model(sessions: sessionmaker[Session], strategy: str) -> None:
    _seed(sessions)
    buckets, totals = usage(
        sessions, START, END, 3600, admin_pb2.USAGE_GROUPING_MODEL, strategy=strategy
    )
    got = {(b.model, b.start_time_ms): b for b in buckets}
    assert list(got) == [("m1", START), ("m2", START), ("m2", START + 2 * HOUR)]
    for (model, start), bucket in got.items():
        rows = [r for r in ROWS if r[2] == model and START + r[0] * HOUR == start]
        want = _expect(rows, start)
        want.model = model
        _same(bucket, want)
    assert got[("m2", START + 2 * HOUR)].errors == 1  # the cancelled one
    _same(totals, _expect(list(ROWS), START))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_bucket_without_grouping(sessions: sessionmaker[Session], strategy: str) -> None:
    _seed(sessions)
    for grouping in (admin_pb2.USAGE_GROUPING_NONE, admin_pb2.USAGE_GROUPING_UNSPECIFIED):
        buckets, totals = usage(sessions, START, END, 0, grouping, strategy=strategy)
        assert len(buckets) == 1
        _same(buckets[0], _expect(list(ROWS), START))
        _same(totals, _expect(list(ROWS), START))
        assert totals.requests == 9 and totals.errors == 2
        assert totals.latency_p50_ms == pytest.approx(200.0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_hour_buckets_and_a_narrow_range(
    sessions: sessionmaker[Session], strategy: str
) -> None:
    _seed(sessions)
    buckets, _ = usage(sessions, START, END, 7200, admin_pb2.USAGE_GROUPING_NONE, strategy=strategy)
    assert [b.start_time_ms for b in buckets] == [START, START + 2 * HOUR]
    assert [b.requests for b in buckets] == [6, 3]
    # A range holding nothing: no buckets, zero totals.
    buckets, totals = usage(
        sessions, START + HOUR, START + 2 * HOUR, 60, admin_pb2.USAGE_GROUPING_KEY,
        strategy=strategy,
    )  # fmt: skip
    assert buckets == []
    assert totals.requests == 0 and totals.latency_p95_ms == 0.0
    assert totals.start_time_ms == START + HOUR


def test_invalid_ranges(sessions: sessionmaker[Session]) -> None:
    grouping = admin_pb2.USAGE_GROUPING_NONE
    with pytest.raises(ValueError):
        usage(sessions, END, START, 60, grouping)
    with pytest.raises(ValueError):
        usage(sessions, START, START, 60, grouping)
    with pytest.raises(ValueError):
        usage(sessions, START, END, -1, grouping)
    with pytest.raises(ValueError, match="at most"):
        usage(sessions, START, START + (MAX_BUCKETS + 1) * 1000, 1, grouping)
    # Exactly the cap is fine; end 0 means now.
    usage(sessions, START, START + MAX_BUCKETS * 1000, 1, grouping)
    buckets, totals = usage(sessions, 1, 0, 0, grouping)
    assert totals.requests == 0 and buckets == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_random_data_matches_a_python_reference(
    sessions: sessionmaker[Session], strategy: str
) -> None:
    rnd = random.Random(5)
    rows: list[Row] = [
        (
            rnd.randrange(0, 6 * HOUR),
            rnd.choice("abc"),
            rnd.choice(["m1", "m2"]),
            rnd.choice([rnd.randrange(0, 50), rnd.randrange(0, 5000)]),  # many ties
            rnd.choice(["ok", "ok", "ok", "error", "cancelled"]),
            rnd.randrange(0, 1000),
            rnd.randrange(0, 100),
            rnd.random() / 100,
        )
        for _ in range(400)
    ]
    writer = RequestLogWriter(sessions)
    entries = [
        LogEntry(
            time_ms=START + r[0], key_id=r[1], model=r[2], latency_ms=r[3], outcome=r[4],
            input_tokens=r[5], output_tokens=r[6], cost_usd=r[7],
        )
        for r in rows
    ]  # fmt: skip
    with sessions() as session, session.begin():
        session.execute(sa.insert(RequestLogRecord), [writer._row(e) for e in entries])
    width = 5400  # 1.5 h: the last bucket is cut by the range end
    end = START + 6 * HOUR
    buckets, totals = usage(
        sessions, START, end, width, admin_pb2.USAGE_GROUPING_MODEL, strategy=strategy
    )
    expected = []
    for model in ("m1", "m2"):
        for b in range(4):
            group = [r for r in rows if r[2] == model and r[0] // (width * 1000) == b]
            if group:
                want = _expect(group, START + b * width * 1000)
                want.model = model
                expected.append(want)
    assert len(buckets) == len(expected)
    for got, want in zip(buckets, expected, strict=True):
        _same(got, want)
    _same(totals, _expect(list(rows), START))
