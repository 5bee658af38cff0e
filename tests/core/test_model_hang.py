"""The model stops sending mid-answer with the connection open: the turn fails
within API_TIMEOUT_MS of the silence and leaves nothing stuck."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, claude_processes_in, start_core

API_TIMEOUT_MS = 3000


@pytest.fixture(scope="module")
def impatient_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, API_TIMEOUT_MS=str(API_TIMEOUT_MS))
    yield process
    process.cleanup()


@pytest.mark.parametrize(
    "reply",
    [Reply.stall(120, "The start of an answer that never ends."), Reply.hang(120)],
    ids=["after-some-text", "before-any-text"],
)
def test_a_model_that_goes_silent_mid_stream_fails_the_turn_in_time(
    impatient_core: CoreProcess, model_double: ModelDouble, reply: Reply
) -> None:
    model_double.script(reply)
    events: list[pb.RunTurnResponse] = []
    error: grpc.RpcError | None = None
    silent_from = 0.0
    with impatient_core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        call = stub.RunTurn(
            request("tell me something", store=True),
            metadata=impatient_core.metadata(),
            timeout=60,
        )
        try:
            for event in call:
                events.append(event)
                if event.WhichOneof("event") == "started":
                    # The model request is what goes silent; wait until it is out.
                    model_double.wait_for_requests(1, timeout=30)
                    silent_from = time.monotonic()
                elif event.WhichOneof("event") == "text_delta":
                    silent_from = time.monotonic()
        except grpc.RpcError as caught:
            error = caught
    ended = time.monotonic()

    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert "API_TIMEOUT_MS" in (error.details() or "")
    assert ended - silent_from < API_TIMEOUT_MS / 1000 + 3
    failed = [e for e in events if e.WhichOneof("event") == "failed"]
    assert failed and failed[0].failed.reason == "model_unavailable"

    # Nothing is left stuck: the model request was dropped, Claude Code ended,
    # the turn is stored as failed, and the conversation goes on.
    workspace = Path(model_double.main_requests[0].working_directory or "")
    deadline = time.monotonic() + 15
    while claude_processes_in(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert claude_processes_in(workspace) == []
    model_double.wait_for_aborted(1, timeout=5)
    started = events[0].started
    with impatient_core.channel() as channel:
        stored = agent_pb2_grpc.AgentServiceStub(channel).GetTurn(
            pb.GetTurnRequest(turn_id=started.turn_id),
            metadata=impatient_core.metadata(),
            timeout=10,
        )
    assert stored.turn.status == pb.TURN_STATUS_FAILED
    model_double.script(Reply.text("Back again."))
    again = run_turn(impatient_core, request("still there?", session_id=started.session_id))
    assert again.error is None, again.error
    assert again.of("completed")[0].completed.text == "Back again."
