"""Where a call came from, and the request-log row built from its outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from claudecode.v1 import models_pb2
from core_service.interceptors import request_context_of
from core_service.keys import KeyInfo
from core_service.request_context import RequestContext, log_entry
from core_service.turns.admission import Caller
from core_service.turns.outcome import TurnOutcome

RUN_TURN = "/claudecode.v1.AgentService/RunTurn"
METADATA = (
    ("authorization", "Bearer sk-cc-secret"),
    ("x-request-id", "req-header"),
    ("x-ccapi-endpoint", "/v1/forged"),
)


def test_a_turn_names_its_endpoint_in_its_origin_not_in_a_header() -> None:
    request = pb.RunTurnRequest(
        origin=pb.RequestOrigin(endpoint="/v1/chat/completions", request_id="req-origin")
    )
    call = request_context_of(RUN_TURN, METADATA, request)
    assert call.endpoint == "/v1/chat/completions" and call.request_id == "req-origin"


def test_a_direct_grpc_turn_is_logged_as_grpc_whatever_its_headers_say() -> None:
    call = request_context_of(RUN_TURN, METADATA, pb.RunTurnRequest())
    assert call.endpoint == f"grpc:{RUN_TURN}" and call.request_id == "req-header"


def test_calls_without_an_origin_field_take_the_endpoint_header() -> None:
    method = "/claudecode.v1.ModelService/ListModels"
    call = request_context_of(method, METADATA, models_pb2.ListModelsRequest())
    assert call.endpoint == "/v1/forged"
    assert call.headers["x-request-id"] == "req-header"
    assert "authorization" not in call.headers


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
            usage=ev.Usage(input_tokens=10, output_tokens=4, cost_usd=0.5),
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
