"""Metrics exposure, bounded labels, the core's counters and the turn's spans,
in-process."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import cast

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ccapi_client.telemetry import OTHER, BoundedLabel, MetricsExposure
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from core_service import metrics
from core_service.errors import ResourceExhausted
from core_service.interceptors import CoreInterceptor
from core_service.keys import KeyStore
from core_service.rate_buckets import TokenBuckets
from core_service.request_log import LogEntry
from core_service.turns import turn_spans
from tests.stack import free_port


def test_a_thousand_keys_make_at_most_top_n_plus_other_series() -> None:
    core = metrics.CoreMetrics(top_keys=10)
    for n in range(1000):
        core.observe_entry(LogEntry(key_id=f"key{n}", model="m", input_tokens=1, cost_usd=0.01))
    keys = {s.labels["key_id"] for m in core.tokens.collect() for s in m.samples}
    assert len(keys) == 11 and OTHER in keys
    # The first ten keep their own series; nothing is lost in the total.
    assert {f"key{n}" for n in range(10)} <= keys
    total = sum(s.value for m in core.tokens.collect() for s in m.samples
                if s.name == "ccapi_tokens_total")
    assert total == 1000


def test_bounded_label_is_stable_once_full() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "c")] == ["a", "b", OTHER, "a", OTHER]
    assert BoundedLabel(0)("a") == OTHER


@pytest.mark.parametrize(
    ("env", "auth", "status"),
    [
        ({}, None, 200),
        ({"CCAPI_METRICS": "off"}, "Bearer x", 404),
        ({"CCAPI_METRICS": "token", "CCAPI_METRICS_TOKEN": "s3cret"}, None, 401),
        ({"CCAPI_METRICS": "token", "CCAPI_METRICS_TOKEN": "s3cret"}, "Bearer nope", 401),
        ({"CCAPI_METRICS_TOKEN": "s3cret"}, "Bearer s3cret", 200),
    ],
)
def test_exposure_setting(env: dict[str, str], auth: str | None, status: int) -> None:
    assert MetricsExposure.from_env(env).check(auth) == status


def test_exposure_setting_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="CCAPI_METRICS"):
        MetricsExposure.from_env({"CCAPI_METRICS": "maybe"})
    with pytest.raises(ValueError, match="CCAPI_METRICS_TOKEN"):
        MetricsExposure.from_env({"CCAPI_METRICS": "token"})


def _get(url: str, token: str = "") -> int:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read().decode()
            assert "ccapi_requests_total" in body
            return int(resp.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_core_listener_honours_the_exposure_setting() -> None:
    core = metrics.CoreMetrics(top_keys=5)
    core.observe_entry(LogEntry(endpoint="/v1/chat/completions", model="m"))
    off = metrics.ListenerSettings(port=free_port(), exposure=MetricsExposure("off"))
    assert metrics.start_listener(core.registry, off) is None
    port = free_port()
    settings = metrics.ListenerSettings(port=port, exposure=MetricsExposure("token", "t0k"))
    server = metrics.start_listener(core.registry, settings)
    assert server is not None
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert _get(url) == 401
        assert _get(url, "wrong") == 401
        assert _get(url, "t0k") == 200
        assert _get(f"http://127.0.0.1:{port}/other", "t0k") == 404
    finally:
        server.shutdown()
        server.server_close()


async def test_stopping_the_core_listener_frees_its_port_without_blocking_the_loop() -> None:
    core = metrics.CoreMetrics(top_keys=5)
    port = free_port()
    server = metrics.start_listener(core.registry, metrics.ListenerSettings(port=port))
    assert server is not None
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = ticks
    await metrics.stop_listener(server)
    ticker.cancel()
    assert ticks > before  # the loop ran on while the listener stopped
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the port is free: the socket was closed

def test_refusals_are_counted_by_kind() -> None:
    core = metrics.CoreMetrics(top_keys=5)
    core.observe_failure("rate_limit_exceeded", "Rate limit reached: 5 tokens per minute.")
    core.observe_failure("rate_limit_exceeded", "Rate limit reached: 2 requests per minute.")
    core.observe_failure("insufficient_quota", "budget")
    core.observe_failure("model_rate_limited", "")
    core.observe_failure("model_overloaded", "")
    core.observe_failure("model_unavailable", "")
    core.observe_failure("invalid_request", "bad")
    core.observe_failure("rate_limit_exceeded", "Too many turns at once: this key allows 1.")
    kinds = {s.labels["kind"] for m in core.limit_rejections.collect() for s in m.samples}
    assert kinds == {"tokens_per_minute", "requests_per_minute", "budget", "concurrency"}
    types = {s.labels["type"] for m in core.model_errors.collect() for s in m.samples}
    assert types == {"429", "529", "5xx"}


async def test_the_wrong_key_throttle_is_counted_as_its_own_kind() -> None:
    class NoKeys:
        def authenticate(self, token: str) -> None:
            return None

    interceptor = CoreInterceptor(
        cast(KeyStore, NoKeys()), key_failures=TokenBuckets(capacity=0, per_second=0.001)
    )
    with pytest.raises(ResourceExhausted) as refused:
        await interceptor._authenticate((("authorization", "Bearer sk-wrong"),), "ipv4:10.0.0.9:1")
    core = metrics.CoreMetrics(top_keys=5)
    core.observe_failure(refused.value.reason, refused.value.message)
    kinds = {s.labels["kind"] for m in core.limit_rejections.collect() for s in m.samples}
    assert kinds == {"wrong_key"}  # not a key's concurrency limit


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    original = turn_spans.tracer
    turn_spans.tracer = provider.get_tracer("test")
    yield exporter
    turn_spans.tracer = original


def test_turn_spans_cover_first_token_and_each_tool(spans: InMemorySpanExporter) -> None:
    parent_provider = TracerProvider()
    with parent_provider.get_tracer("t").start_as_current_span("rpc") as rpc:
        marks = turn_spans.TurnSpans()
        marks.observe(pb.RunTurnResponse(tool_use=ev.ToolUse(id="u1", name="Bash")))
        marks.observe(pb.RunTurnResponse(text_delta=ev.TextDelta(text="x")))
        marks.observe(pb.RunTurnResponse(tool_result=ev.ToolResult(tool_use_id="u1",
                                                                   is_error=True)))
        marks.observe(pb.RunTurnResponse(tool_use=ev.ToolUse(id="u2", name="Read")))
        marks.close()
    names = [s.name for s in spans.get_finished_spans()]
    assert names == ["model.first_token", "tool Bash", "tool Read"]
    for span in spans.get_finished_spans():
        assert span.parent is not None
        assert span.parent.span_id == rpc.get_span_context().span_id
    bash = spans.get_finished_spans()[1]
    assert bash.status.status_code.name == "ERROR"


def test_json_log_lines_carry_the_trace_id() -> None:
    import json
    import logging

    from ccapi_client.json_logs import JsonFormatter

    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


class _Registry:
    """What the gauges read off the process registry."""

    _live: dict[str, object] = {}
    live_count = 5
    running_count = 4
    queue_depth = 7


class _Pool:
    ready_count = 1
    size = 2


def _gauges(registry: object) -> dict[str, float]:
    return {m.name: m.samples[0].value for m in metrics.CoreGauges(registry, _Pool()).collect()}


def test_gauges_read_the_registry_and_the_pool() -> None:
    assert _gauges(_Registry()) == {
        "ccapi_claude_processes_live": 5,
        "ccapi_turns_running": 4,
        "ccapi_queue_depth": 7,
        "ccapi_pool_ready_processes": 1,
        "ccapi_pool_size": 2,
    }
