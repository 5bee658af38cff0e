"""Traces and metrics through the real stack: gunicorn facade (two workers) in
front of a real core, both exporting spans to one file (the test-only
exporter, OTEL_TRACES_EXPORTER=ccapi_file)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, start_core

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
RUN_TURN = "/claudecode.v1.AgentService/RunTurn"


@pytest.fixture(scope="module")
def traced(
    model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CoreProcess, Facade, Path]]:
    spans = tmp_path_factory.mktemp("spans") / "spans.jsonl"
    env = {"OTEL_TRACES_EXPORTER": "ccapi_file", "CCAPI_TRACE_FILE": str(spans)}
    core = start_core(model_double.url, None, **env)
    facade = start_facade(
        core.addr,
        tmp_path_factory.mktemp("facade") / "facade.log",
        extra_env={**env, "CCAPI_METRICS_TOKEN": "scrape-me"},
    )
    yield core, facade, spans
    facade.stop()
    core.cleanup()


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_traceparent_yields_linked_spans_from_facade_and_core(
    traced: tuple[CoreProcess, Facade, Path], model_double: ModelDouble
) -> None:
    core, facade, path = traced
    model_double.script(Reply.text("traced answer"))
    resp = httpx.post(
        facade.base_url + "/v1/chat/completions",
        headers={
            "Authorization": f"Bearer {core.api_key}",
            "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
        },
        json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text

    # The spans end (and are written) just after the answer went out.
    deadline = time.monotonic() + 15
    while True:
        spans = [s for s in read_spans(path) if s["context"]["trace_id"] == "0x" + TRACE_ID]
        names = {s["name"] for s in spans}
        if {RUN_TURN, "POST /v1/chat/completions"} <= names or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_service.setdefault(span["resource"]["attributes"]["service.name"], []).append(span)
    assert set(by_service) >= {"ccapi-http", "ccapi-core"}, [s["name"] for s in spans]

    http_root = next(s for s in by_service["ccapi-http"] if s["kind"] == "SpanKind.SERVER")
    assert http_root["parent_id"] == "0x" + CLIENT_SPAN
    rpc = next(s for s in by_service["ccapi-core"]
               if s["name"] == RUN_TURN)
    assert rpc["parent_id"] == http_root["context"]["span_id"]

    core_names = {s["name"] for s in by_service["ccapi-core"]}
    assert {"turn.admission", "turn.planning", "claude.process", "model.first_token"} <= core_names
    rpc_id = rpc["context"]["span_id"]
    for name in ("turn.admission", "turn.planning", "claude.process", "model.first_token"):
        span = next(s for s in by_service["ccapi-core"] if s["name"] == name)
        assert span["parent_id"] == rpc_id, name
    # Database statements are spans too (SQLAlchemy instrumentation), in the same trace.
    assert any(s["attributes"].get("db.system") or s["attributes"].get("db.system.name")
               for s in by_service["ccapi-core"])

    # The request-log row carries the trace id.
    from claudecode.v1 import admin_pb2, admin_pb2_grpc

    # Rows are written in batches off the request path: wait for it.
    trace_ids: set[str] = set()
    deadline = time.monotonic() + 30
    while TRACE_ID not in trace_ids and time.monotonic() < deadline:
        with core.channel() as channel:
            logs = admin_pb2_grpc.AdminServiceStub(channel).ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(page_size=50), metadata=core.admin_metadata()
            ).logs
        trace_ids = {log.trace_id for log in logs}
        time.sleep(0.2)
    assert TRACE_ID in trace_ids
    # And the core's log lines of that request.
    lines = [json.loads(line) for line in core.logs().splitlines() if line.startswith("{")]
    assert any(line.get("trace_id") == TRACE_ID and line.get("msg") == "rpc finished"
               for line in lines)
    # And the facade's access line for it (gunicorn/uvicorn lines are JSON too).
    facade_lines = [json.loads(line) for line in facade.log.read_text().splitlines()
                    if line.startswith("{")]
    assert any(line.get("logger") == "uvicorn.access" and line.get("trace_id") == TRACE_ID
               and "POST /v1/chat/completions" in line["msg"] for line in facade_lines)


def test_facade_metrics_need_the_token_and_add_up_the_workers(
    traced: tuple[CoreProcess, Facade, Path], model_double: ModelDouble
) -> None:
    core, facade, _ = traced
    assert httpx.get(facade.base_url + "/metrics", timeout=10).status_code == 401
    before = _chat_requests(facade)
    for _ in range(4):  # spread over both workers by the kernel
        assert httpx.get(facade.base_url + "/v1/models",
                         headers={"Authorization": f"Bearer {core.api_key}"},
                         timeout=10).status_code == 200
    after = _chat_requests(facade)
    assert after - before == 4


def _chat_requests(facade: Facade) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(facade.base_url + "/metrics",
                     headers={"Authorization": "Bearer scrape-me"}, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ccapi_http_requests_total" and s.labels["endpoint"] == "/v1/models"
        and s.labels["status"] == "200"
    )
