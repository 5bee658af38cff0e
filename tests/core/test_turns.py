"""One turn through the real core, the real Claude Code CLI and the model double."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from claudecode.v1 import events_pb2 as ev
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess


def test_text_streams_as_several_deltas_before_completion(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("one two three four five six seven eight", chunks=6, delay=0.05))

    log = run_turn(core, request("say something"))

    assert log.error is None
    kinds = log.kinds()
    assert kinds[0] == "started" and kinds[-1] == "completed"
    deltas = log.of("text_delta")
    assert len(deltas) >= 4
    assert kinds.index("completed") > kinds.index("text_delta")
    assert "".join(d.text_delta.text for d in deltas) == "one two three four five six seven eight"
    done = log.of("completed")[0].completed
    assert done.text == "one two three four five six seven eight"
    assert done.finish_reason == ev.FINISH_REASON_STOP
    assert done.usage.output_tokens > 0
    assert log.started.started.model == "claude-sonnet-5-5"
    assert model_double.main_requests[-1].last_user_text == "say something"


def test_deltas_reach_the_client_while_the_model_is_still_writing(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("a b c d e f", chunks=6, delay=0.4))
    arrivals: list[float] = []
    from claudecode.v1 import agent_pb2_grpc

    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        for event in stub.RunTurn(request("go"), metadata=core.metadata(), timeout=60):
            if event.WhichOneof("event") == "text_delta":
                arrivals.append(time.monotonic())
    # Real streaming: the first piece arrives long before the last is written.
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 1.2


def test_write_tool_creates_the_file_in_this_conversations_workspace(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/fib.py", "content": "print(1)\n"}),
        Reply.text("Wrote fib.py."),
    )

    log = run_turn(core, request("write fib.py"))

    assert log.error is None, log.error
    uses = log.of("tool_use")
    assert [u.tool_use.name for u in uses] == ["Write"]
    assert uses[0].tool_use.summary == "Write fib.py"
    results = log.of("tool_result")
    assert results and results[0].tool_result.tool_use_id == uses[0].tool_use.id
    assert not results[0].tool_result.is_error
    workspace = Path(model_double.main_requests[0].working_directory or "")
    assert workspace.parent == core.data_dir / "workspaces"
    assert (workspace / "fib.py").read_text() == "print(1)\n"
    assert log.of("completed")[0].completed.text.endswith("Wrote fib.py.")


def test_thinking_arrives_as_reasoning_deltas(core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.script(Reply.thinking("Let me think about primes carefully.", "2, 3, 5"))

    log = run_turn(core, request("primes?"))

    assert log.error is None
    reasoning = "".join(e.reasoning_delta.text for e in log.of("reasoning_delta"))
    assert reasoning == "Let me think about primes carefully."
    done = log.of("completed")[0].completed
    assert done.reasoning == reasoning
    assert done.text == "2, 3, 5"
    assert "primes" not in done.text


def test_each_conversation_gets_its_own_workspace(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = run_turn(core, request("one"))
    second = run_turn(core, request("two"))
    assert first.error is None and second.error is None
    dirs = {r.working_directory for r in model_double.main_requests}
    assert len(dirs) == 2
    assert first.started.started.session_id != second.started.started.session_id


def test_unknown_model_is_not_found(core: CoreProcess) -> None:
    log = run_turn(core, request("hi", model="gpt-7-turbo"))
    assert log.error is not None
    assert log.error.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-7-turbo" in (log.error.details() or "")


def test_conversation_must_end_with_a_user_message(core: CoreProcess) -> None:
    from claudecode.v1 import agent_pb2 as pb

    log = run_turn(core, pb.RunTurnRequest(model="sonnet"))
    assert log.error is not None
    assert log.error.code() == grpc.StatusCode.INVALID_ARGUMENT
