"""Where a call came from, and the request-log row built from its outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from claudecode.v1 import models_pb2
from core_service.domain.turn import Usage
from core_service.interceptors import address_bucket, peer_address, request_context_of
from core_service.keys import KeyInfo
from core_service.rate_buckets import TokenBuckets
from core_service.request_context import RequestContext, final_status, log_entry
from core_service.turns.admission import Caller
from core_service.turns.outcome import TurnOutcome

RUN_TURN = "/claudecode.v1.AgentService/RunTurn"
METADATA = (
    ("authorization", "Bearer sk-cc-secret"),
    ("x-request-id", "req-header"),
    ("x-ccapi-endpoint", "/v1/forged"),
    ("x-ccapi-client-address", "203.0.113.9"),
    ("x-ccapi-facade-token", "facade-secret"),
)
PEER = "ipv4:127.0.0.1:40000"


def test_a_turn_names_its_endpoint_in_its_origin_not_in_a_header() -> None:
    request = pb.RunTurnRequest(
        origin=pb.RequestOrigin(endpoint="/v1/chat/completions", request_id="req-origin")
    )
    call = request_context_of(RUN_TURN, METADATA, request, PEER, via_facade=True)
    assert call.endpoint == "/v1/chat/completions" and call.request_id == "req-origin"
    assert call.client_address == "203.0.113.9" and not call.client_stream


def test_a_direct_grpc_turn_is_logged_as_grpc_whatever_its_headers_say() -> None:
    call = request_context_of(RUN_TURN, METADATA, pb.RunTurnRequest())
    assert call.endpoint == f"grpc:{RUN_TURN}" and call.request_id == "req-header"


def test_a_direct_caller_cannot_name_the_endpoint_address_or_stream_flag() -> None:
    request = pb.RunTurnRequest(
        origin=pb.RequestOrigin(endpoint="/v1/chat/completions", client_stream=False)
    )
    call = request_context_of(RUN_TURN, METADATA, request, PEER)
    assert call.endpoint == f"grpc:{RUN_TURN}" and not call.via_facade
    assert call.client_address == "127.0.0.1" and call.client_stream
    method = "/claudecode.v1.ModelService/ListModels"
    call = request_context_of(method, METADATA, models_pb2.ListModelsRequest(), PEER)
    assert call.endpoint == f"grpc:{method}"


def test_calls_without_an_origin_field_take_the_facades_endpoint_header() -> None:
    method = "/claudecode.v1.ModelService/ListModels"
    call = request_context_of(
        method, METADATA, models_pb2.ListModelsRequest(), PEER, via_facade=True
    )
    assert call.endpoint == "/v1/forged"
    assert call.headers["x-request-id"] == "req-header"
    assert "authorization" not in call.headers and "x-ccapi-facade-token" not in call.headers


def test_peer_addresses_and_their_failure_buckets() -> None:
    assert peer_address("ipv4:10.1.2.3:5555") == "10.1.2.3"
    assert peer_address("ipv6:[2001:db8::1]:5555") == "2001:db8::1"
    # One IPv6 host usually holds a whole /64: its addresses count together.
    assert address_bucket("2001:db8::1") == address_bucket("2001:db8::ffff") == "2001:db8::/64"
    assert address_bucket("10.1.2.3") != address_bucket("10.1.2.4")


def test_token_buckets_refill_and_stay_within_their_cap() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 0.5, max_names=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 2]
    now[0] = 2.0  # one token back
    assert buckets.take("a") == 0 and buckets.take("a") == 2
    for name in "bcde":
        buckets.take(name)
    assert len(buckets) == 3


def test_a_turns_last_event_says_what_the_client_got() -> None:
    failed = pb.RunTurnResponse(
        failed=ev.TurnFailed(code=14, message="Overloaded", reason="model_overloaded")
    )
    assert final_status(failed) == (grpc.StatusCode.UNAVAILABLE, "Overloaded", "model_overloaded")
    assert final_status(pb.RunTurnResponse(completed=ev.TurnCompleted())) == (
        grpc.StatusCode.OK,
        "",
        "",
    )
    assert final_status(pb.RunTurnResponse(text_delta=ev.TextDelta(text="x"))) is None


def key() -> KeyInfo:
    return KeyInfo(
        id="k-1",
        name="ci",
        prefix="sk-cc-ab",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
    )


def test_the_log_row_is_built_from_the_turns_outcome() -> None:
    call = RequestContext(
        method=RUN_TURN,
        endpoint="/v1/responses",
        request_id="r-1",
        caller=Caller("k-1", key=key()),
    )
    call.reply.report(
        TurnOutcome(
            request_json='{"model": "sonnet"}',
            model="claude-sonnet-4-5",
            session_id="s-1",
            turn_id="t-1",
            usage=Usage(input_tokens=10, output_tokens=4, cost_usd=0.5),
            tools=("Write", "Bash"),
            files_changed=2,
            text="Done.",
            ttft_ms=120,
            completed=True,
        )
    )
    row = log_entry(call, grpc.StatusCode.OK, "", "", bodies=True)

    assert (row.key_id, row.key_name, row.endpoint) == ("k-1", "ci", "/v1/responses")
    assert (row.model, row.session_id, row.turn_id) == ("claude-sonnet-4-5", "s-1", "t-1")
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (10, 4, 0.5)
    assert row.tools_used == ["Write", "Bash"] and row.files_changed == 2
    assert row.ttft_ms == 120 and row.stream and row.status == 200 and row.outcome == "ok"
    assert row.request_body == '{"model": "sonnet"}' and row.response_body == "Done."
    assert log_entry(call, grpc.StatusCode.OK, "", "", bodies=False).request_body == ""


def test_a_turn_the_client_did_not_stream_is_not_logged_as_a_stream() -> None:
    call = RequestContext(
        method=RUN_TURN, endpoint="/v1/chat/completions", request_id="", client_stream=False
    )
    call.reply.report(TurnOutcome(request_json=""))
    assert not log_entry(call, grpc.StatusCode.OK, "", "", bodies=False).stream


def test_a_refused_call_is_logged_with_its_status_and_no_turn() -> None:
    call = RequestContext(method=RUN_TURN, endpoint="grpc:x", request_id="")
    row = log_entry(call, grpc.StatusCode.UNAUTHENTICATED, "invalid_api_key", "bad key", True)
    assert row.status == 401 and row.outcome == "error" and row.error == "bad key"
    assert not row.stream and row.model == "" and row.key_id == ""


def test_a_call_reports_one_outcome() -> None:
    call = RequestContext(method=RUN_TURN, endpoint="grpc:x", request_id="")
    call.reply.report(TurnOutcome(request_json=""))
    with pytest.raises(RuntimeError):
        call.reply.report(TurnOutcome(request_json=""))
