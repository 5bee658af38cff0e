"""The core's /metrics after scripted traffic: its numbers are the request log's.

One core of its own (so nothing else adds to its counters), the real CLI and
the model double: a success, a model error (529), a limit hit (rpm), a turn
the client cancels, a third key past the key-label cap, and a client-tool
round trip (two requests, a call waiting in between).
"""

from __future__ import annotations

import collections
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from claudecode.v1 import admin_pb2, admin_pb2_grpc, agent_pb2_grpc
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, ccapi, start_core, within_one_rate_window

LOOKUP = cpb.ClientTool(
    name="lookup",
    description="Look something up.",
    parameters_json='{"type": "object", "properties": {"q": {"type": "string"}}}',
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metered_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, CCAPI_METRICS_TOP_KEYS="2")
    yield process
    process.cleanup()


def scrape(core: CoreProcess, token: str = "") -> Samples:
    req = urllib.request.Request(f"http://127.0.0.1:{core.env['CCAPI_METRICS_PORT']}/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def request_logs(core: CoreProcess) -> list[admin_pb2.RequestLog]:
    with core.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        reply = stub.ListRequestLogs(
            admin_pb2.ListRequestLogsRequest(page_size=500), metadata=core.admin_metadata()
        )
    return list(reply.logs)


def new_key(core: CoreProcess, name: str, *options: str) -> str:
    return ccapi(core.env, "keys", "create", "--name", name, *options).strip().splitlines()[-1]


def cancelled_turn(core: CoreProcess) -> None:
    with core.channel() as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).RunTurn(
            request("a slow one"), metadata=core.metadata(), timeout=60
        )
        for event in call:
            if event.WhichOneof("event") == "text_delta":
                break
        call.cancel()


def wait_for_rows(core: CoreProcess, count: int) -> list[admin_pb2.RequestLog]:
    deadline = time.monotonic() + 20
    while True:
        rows = [r for r in request_logs(core) if r.endpoint.startswith("grpc:")]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_scraped_values_match_the_request_log(
    metered_core: CoreProcess, model_double: ModelDouble
) -> None:
    core = metered_core
    within_one_rate_window(30)
    model_double.script(Reply.text("all fine here", usage={"input_tokens": 11,
                                                            "output_tokens": 7}))
    assert run_turn(core, request("hello")).error is None

    model_double.set_default(Reply.error(529, "overloaded_error", "double is overloaded"))
    assert run_turn(core, request("fail please")).error is not None
    model_double.reset()

    limited = new_key(core, "limited", "--rpm", "1")
    assert run_turn(core, request("one"), key=limited).error is None
    refused = run_turn(core, request("two"), key=limited)
    assert refused.error is not None
    assert refused.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    model_double.script(Reply.text("slow " * 40, chunks=40, delay=0.2))
    cancelled_turn(core)

    third = new_key(core, "third")
    assert run_turn(core, request("from a third key"), key=third).error is None

    model_double.script(
        Reply.call_tools([("lookup", {"q": "tides"})], ids=["toolu_m1"]),
        Reply.echo_tool_results("{name} said {text}", " / "),
    )
    stopped = run_turn(core, request("tides?", tools=[LOOKUP]))
    assert stopped.error is None, stopped.error
    assert named(scrape(core), "ccapi_client_tool_calls_waiting") == {frozenset(): 1.0}
    answered = run_turn(
        core,
        pb.RunTurnRequest(
            model="sonnet",
            previous_turn_id=stopped.started.started.turn_id,
            messages=[
                cpb.Message(
                    role=cpb.ROLE_TOOL,
                    content=[
                        cpb.ContentPart(
                            tool_output=cpb.ClientToolOutput(call_id="toolu_m1", output="high")
                        )
                    ],
                )
            ],
        ),
    )
    assert answered.error is None, answered.error

    rows = wait_for_rows(core, 8)
    assert len(rows) == 8, [(r.status, r.outcome) for r in rows]
    assert {r.outcome for r in rows} == {"ok", "error", "cancelled"}
    # Tracing is off here, yet every row has a trace id of its own.
    assert all(len(r.trace_id) == 32 for r in rows)
    assert len({r.trace_id for r in rows}) == 8

    samples = scrape(core)
    assert named(samples, "ccapi_client_tool_calls_waiting") == {frozenset(): 0.0}

    by_labels = collections.Counter(
        (r.endpoint, r.model or "none", str(r.status), r.outcome) for r in rows
    )
    requests = {
        (d["endpoint"], d["model"], d["status"], d["outcome"]): v
        for labels, v in named(samples, "ccapi_requests_total").items()
        for d in [dict(labels)]
    }
    assert requests == {k: float(v) for k, v in by_labels.items()}

    def tokens(kind: str) -> float:
        return sum(v for labels, v in named(samples, "ccapi_tokens_total").items()
                   if dict(labels)["kind"] == kind)

    assert tokens("input") == sum(r.usage.input_tokens for r in rows)
    assert tokens("output") == sum(r.usage.output_tokens for r in rows)
    assert sum(named(samples, "ccapi_cost_usd_total").values()) == pytest.approx(
        sum(r.usage.cost_usd for r in rows)
    )
    latency_count = sum(named(samples, "ccapi_request_duration_seconds_count").values())
    assert latency_count == len(rows)
    ttft_count = sum(named(samples, "ccapi_time_to_first_token_seconds_count").values())
    assert ttft_count == sum(1 for r in rows if r.time_to_first_token_ms > 0)

    assert named(samples, "ccapi_limit_rejections_total") == {
        frozenset({("kind", "requests_per_minute")}): 1.0
    }
    assert named(samples, "ccapi_model_errors_total") == {frozenset({("type", "529")}): 1.0}

    # Three keys used tokens; the label keeps two and folds the rest into "other".
    keys = {dict(labels)["key_id"] for labels in named(samples, "ccapi_tokens_total")}
    assert len(keys) == 3 and "other" in keys

    assert named(samples, "ccapi_turns_running") == {frozenset(): 0.0}
    # Every turn but the refused one got a process (six), and the round trip's
    # second request took the process still waiting for it ("live").
    acquired = named(samples, "ccapi_claude_process_acquisitions_total")
    assert sum(acquired.values()) == 7
    assert acquired[frozenset({("source", "live")})] >= 1
    db = named(samples, "ccapi_db_query_duration_seconds_count")
    assert db.get(frozenset({("operation", "insert")}), 0) > 0
