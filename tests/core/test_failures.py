"""Failures reach the caller quickly, with a clear gRPC status."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from claudecode.v1 import agent_pb2_grpc
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, claude_processes_in, start_core


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


@pytest.mark.parametrize(
    ("status", "kind", "code", "reason"),
    [
        (429, "rate_limit_error", grpc.StatusCode.RESOURCE_EXHAUSTED, "model_rate_limited"),
        (500, "api_error", grpc.StatusCode.UNAVAILABLE, "model_unavailable"),
        (529, "overloaded_error", grpc.StatusCode.UNAVAILABLE, "model_overloaded"),
        (401, "authentication_error", grpc.StatusCode.UNAUTHENTICATED, "upstream_authentication"),
    ],
)
def test_model_errors_end_the_turn_quickly_with_a_clear_status(
    core: CoreProcess,
    model_double: ModelDouble,
    status: int,
    kind: str,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    model_double.set_default(Reply.error(status, kind, f"double says {kind}"))
    started = time.monotonic()

    log = run_turn(core, request("hello"))

    assert time.monotonic() - started < 15
    assert log.error is not None
    assert log.error.code() == code, log.error.details()
    assert _reason(log.error) == reason
    failed = log.of("failed")
    assert failed and failed[0].failed.code == code.value[0]
    assert failed[0].failed.reason == reason


def test_missing_api_key_is_refused(core: CoreProcess) -> None:
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.RunTurn(request("hi"), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(caught.value) == "invalid_api_key"


def test_wrong_api_key_is_refused(core: CoreProcess, model_double: ModelDouble) -> None:
    log = run_turn(core, request("hi"), key="sk-cc-not-a-real-key")
    assert log.error is not None and log.error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert model_double.main_requests == []


def test_revoked_key_stops_working_at_once(core: CoreProcess) -> None:
    from tests.stack import ccapi

    out = ccapi(core.env, "keys", "create", "--name", "short-lived")
    secret = out.strip().splitlines()[-1]
    key_id = out.split()[2]
    assert run_turn(core, request("hi"), key=secret).error is None
    ccapi(core.env, "keys", "revoke", key_id)
    log = run_turn(core, request("hi"), key=secret)
    assert log.error is not None and log.error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
def core_without_credentials(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, ANTHROPIC_API_KEY="")
    yield process
    process.cleanup()


def test_missing_claude_credentials_name_the_variables(
    core_without_credentials: CoreProcess,
) -> None:
    started = time.monotonic()
    log = run_turn(core_without_credentials, request("hi"))
    assert time.monotonic() - started < 5
    assert log.error is not None
    assert log.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = log.error.details() or ""
    assert "ANTHROPIC_API_KEY" in details and "CLAUDE_CODE_OAUTH_TOKEN" in details


def test_cancelling_the_call_interrupts_the_turn_and_ends_its_process(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.hang(60))
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        call = stub.RunTurn(request("take your time"), metadata=core.metadata(), timeout=90)
        first = next(call)
        assert first.WhichOneof("event") == "started"
        model_double.wait_for_requests(1, timeout=20)
        workspace = Path(model_double.main_requests[0].working_directory or "")
        assert claude_processes_in(workspace)
        cancelled_at = time.monotonic()
        call.cancel()
    deadline = time.monotonic() + 10
    while claude_processes_in(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert claude_processes_in(workspace) == []
    assert time.monotonic() - cancelled_at < 5


def test_a_deadline_interrupts_the_turn(core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.script(Reply.hang(60))
    log = run_turn(core, request("slow"), timeout=4)
    assert log.error is not None and log.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    workspace = Path(model_double.main_requests[0].working_directory or "")
    deadline = time.monotonic() + 10
    while claude_processes_in(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert claude_processes_in(workspace) == []


def test_a_second_turn_on_a_busy_session_is_refused(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = run_turn(core, request("start"))
    session_id = first.started.started.session_id
    model_double.script(Reply.hang(5, "slow answer"))
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(run_turn(core, request("again", session_id=session_id)))
    )
    worker.start()
    model_double.wait_for_requests(2, timeout=20)
    clash = run_turn(core, request("meanwhile", session_id=session_id))
    worker.join(30)
    assert clash.error is not None and clash.error.code() == grpc.StatusCode.ABORTED
