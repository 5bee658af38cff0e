"""Client tools through the real core over gRPC: a turn stops for the calls
while Claude Code waits, and a later RunTurn with the results continues it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from claudecode.v1 import admin_pb2, admin_pb2_grpc, agent_pb2_grpc
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from tests.core.helpers import TurnLog, request, run_turn, user
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core

LOOKUP = cpb.ClientTool(
    name="lookup",
    description="Look something up.",
    parameters_json='{"type": "object", "properties": {"q": {"type": "string"}}}',
)
WEATHER = cpb.ClientTool(name="get_weather", description="Weather for a city.")
TOOLS = [LOOKUP, WEATHER]


def results(*pairs: tuple[str, str], error: bool = False) -> cpb.Message:
    return cpb.Message(
        role=cpb.ROLE_TOOL,
        content=[
            cpb.ContentPart(tool_output=cpb.ClientToolOutput(call_id=i, output=o, is_error=error))
            for i, o in pairs
        ],
    )


def answer(previous: TurnLog, message: cpb.Message) -> pb.RunTurnRequest:
    return pb.RunTurnRequest(
        model="sonnet", previous_turn_id=previous.started.started.turn_id, messages=[message]
    )


def stop_for_two_calls(core: CoreProcess, double: ModelDouble, ids: tuple[str, str]) -> TurnLog:
    double.script(
        Reply.call_tools(
            [("lookup", {"q": "tides"}), ("get_weather", {"city": "Oslo"})],
            text_before="Let me check both.",
            ids=list(ids),
        ),
        Reply.echo_tool_results("{error}{name} said {text}", " / ", prefix="Answer: "),
    )
    log = run_turn(core, request("tides and weather", tools=TOOLS))
    assert log.error is None, log.error
    return log


def test_a_turn_stops_for_client_calls_and_the_results_continue_it(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = stop_for_two_calls(core, model_double, ("toolu_a1", "toolu_b1"))

    done = first.of("completed")[0].completed
    assert done.finish_reason == ev.FINISH_REASON_TOOL_CALLS
    assert [(c.call_id, c.name) for c in done.tool_calls] == [
        ("toolu_a1", "lookup"),
        ("toolu_b1", "get_weather"),
    ]
    assert done.tool_calls[0].arguments_json.replace(" ", "") == '{"q":"tides"}'
    assert done.text == "Let me check both."
    kinds = first.kinds()
    assert kinds.index("tool_call_started") < kinds.index("tool_call_done")
    assert kinds.index("tool_call_done") < kinds.index("completed")
    assert not first.of("tool_use"), "client calls are not the agent's own tool uses"
    # Only the client's tools, exactly as named (beside Claude Code's internal placeholder).
    offered = set(model_double.main_requests[0].offered_tools)
    assert offered - {"DeferredToolPlaceholder"} == {"lookup", "get_weather"}

    second = run_turn(
        core, answer(first, results(("toolu_b1", "sunny"), ("toolu_a1", "high at 6")))
    )

    assert second.error is None, second.error
    final = second.of("completed")[0].completed
    assert final.finish_reason == ev.FINISH_REASON_STOP
    assert final.text == "Answer: lookup said high at 6 / get_weather said sunny"
    assert second.started.started.session_id == first.started.started.session_id
    assert second.started.started.parent_turn_id == first.started.started.turn_id
    assert not second.of("tool_result")
    # The same Claude Code turn continued: the model's next request pairs the results.
    seen = model_double.main_requests[-1].tool_results_seen
    assert {(s.tool_use_id, s.text) for s in seen} == {
        ("toolu_a1", "high at 6"),
        ("toolu_b1", "sunny"),
    }


def rpc_error(log: TurnLog) -> grpc.RpcError:
    assert log.error is not None, log.kinds()
    return log.error


def test_bad_results_are_refused_by_name_and_lose_nothing(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = stop_for_two_calls(core, model_double, ("toolu_a2", "toolu_b2"))

    stranger = rpc_error(run_turn(core, answer(first, results(("toolu_zz", "x")))))
    assert stranger.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "toolu_zz" in str(stranger.details())
    missing = rpc_error(run_turn(core, answer(first, results(("toolu_a2", "x")))))
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "toolu_b2" in str(missing.details())
    doubled = cpb.Message(
        role=cpb.ROLE_TOOL,
        content=[*results(("toolu_a2", "x")).content, *results(("toolu_a2", "y")).content],
    )
    twice = rpc_error(run_turn(core, answer(first, doubled)))
    assert twice.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "toolu_a2" in str(twice.details())

    # Still waiting: the right results continue the turn.
    good = run_turn(core, answer(first, results(("toolu_a2", "one"), ("toolu_b2", "two"))))
    assert good.error is None, good.error
    text = good.of("completed")[0].completed.text
    assert text == "Answer: lookup said one / get_weather said two"


def test_results_for_a_conversation_with_nothing_pending_are_refused(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("plain answer"))
    plain = run_turn(core, request("hello"))
    assert plain.error is None, plain.error

    refused = rpc_error(run_turn(core, answer(plain, results(("toolu_q", "x")))))

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pending" in str(refused.details())


def test_a_new_message_instead_of_results_fails_the_calls_and_goes_on(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = stop_for_two_calls(core, model_double, ("toolu_a3", "toolu_b3"))
    model_double.reset()
    model_double.script(Reply.text("Fine, something else then."))

    second = run_turn(
        core,
        pb.RunTurnRequest(
            model="sonnet",
            previous_turn_id=first.started.started.turn_id,
            messages=[user("never mind, tell me a joke")],
            tools=TOOLS,
        ),
    )

    assert second.error is None, second.error
    assert second.of("completed")[0].completed.text == "Fine, something else then."
    # Claude Code tells the model its waiting calls were cut short.
    last = model_double.main_requests[-1].last_user_text or ""
    assert last.endswith("never mind, tell me a joke")
    # The session moved on: results sent to it now find nothing pending.
    late_results = pb.RunTurnRequest(
        model="sonnet",
        session_id=first.started.started.session_id,
        messages=[results(("toolu_a3", "x"), ("toolu_b3", "y"))],
    )
    late = rpc_error(run_turn(core, late_results))
    assert late.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def impatient_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS="3")
    yield process
    process.cleanup()


def test_calls_nobody_answers_time_out_and_the_session_stays_usable(
    impatient_core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools([("lookup", {"q": "x"})], ids=["toolu_t1"]),
        Reply.text("after the timeout"),
        Reply.text("still here"),
    )
    first = run_turn(impatient_core, request("look it up", tools=TOOLS))
    assert first.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS

    time.sleep(6)

    again = run_turn(
        impatient_core,
        pb.RunTurnRequest(
            model="sonnet",
            session_id=first.started.started.session_id,
            messages=[user("are you there?")],
            tools=TOOLS,
        ),
    )
    assert again.error is None, again.error
    assert again.of("completed")[0].completed.text in ("still here", "after the timeout")


def test_results_reach_the_model_after_a_core_restart(model_double: ModelDouble) -> None:
    core = start_core(model_double.url)
    try:
        model_double.script(
            Reply.call_tools([("lookup", {"q": "x"})], ids=["toolu_r1"]),
            Reply.text("never used"),
        )
        first = run_turn(core, request("look it up", tools=TOOLS))
        assert first.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS
        time.sleep(2)  # Claude Code writes the calls to its transcript a moment later
        core.stop()
        restarted = start_core(model_double.url, core.data_dir)
        restarted.api_key = core.api_key
        model_double.reset()
        model_double.script(Reply.text("resumed with the result"))

        second = run_turn(
            restarted,
            pb.RunTurnRequest(
                model="sonnet",
                previous_turn_id=first.started.started.turn_id,
                messages=[results(("toolu_r1", "forty-two"))],
                tools=TOOLS,
            ),
        )

        assert second.error is None, second.error
        assert second.of("completed")[0].completed.text == "resumed with the result"
        prompt = model_double.main_requests[-1].last_user_text or ""
        assert "toolu_r1" in prompt and "forty-two" in prompt
        restarted.stop()
    finally:
        core.cleanup()


def test_results_sent_while_the_turn_still_runs_are_refused_as_a_conflict(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools(
            [("lookup", {"q": "one"}), ("get_weather", {"city": "slowly written"})],
            ids=["toolu_e1", "toolu_e2"],
            delay=0.5,
        ),
        Reply.echo_tool_results(),
    )
    early: TurnLog | None = None
    log = TurnLog()
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        for event in stub.RunTurn(
            request("two calls", tools=TOOLS), metadata=core.metadata(), timeout=60
        ):
            log.events.append(event)
            if event.HasField("tool_call_done") and early is None:
                # The second call is still being written: the turn has not stopped yet.
                early = run_turn(core, answer(log, results(("toolu_e1", "x"))))

    assert early is not None
    assert rpc_error(early).code() == grpc.StatusCode.ABORTED
    assert log.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS
    done = run_turn(core, answer(log, results(("toolu_e1", "a"), ("toolu_e2", "b"))))
    assert done.of("completed")[0].completed.text == "lookup: a\nget_weather: b"


def test_each_request_of_a_round_trip_is_its_own_log_row_with_the_calls(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    first = stop_for_two_calls(core, model_double, ("toolu_g1", "toolu_g2"))
    second = run_turn(core, answer(first, results(("toolu_g1", "x"), ("toolu_g2", "y"))))
    assert second.error is None, second.error
    turn_ids = [first.started.started.turn_id, second.started.started.turn_id]

    rows: dict[str, admin_pb2.RequestLog] = {}
    deadline = time.monotonic() + 30
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        while len(rows) < 2 and time.monotonic() < deadline:
            logs = admin.ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(page_size=200), metadata=core.admin_metadata()
            ).logs
            rows = {r.turn_id: r for r in logs if r.turn_id in turn_ids}
            time.sleep(0.2)

    assert list(rows[turn_ids[0]].tools_used) == ["lookup", "get_weather"]
    assert list(rows[turn_ids[1]].tools_used) == []


def test_refused_results_leave_the_waiting_turn_its_slot_and_answerable(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    # A key allowed one turn at once, on sonnet only.
    with core.channel() as channel:
        created = admin_pb2_grpc.AdminServiceStub(channel).CreateKey(
            admin_pb2.CreateKeyRequest(
                name="one-at-a-time",
                limits=admin_pb2.KeyLimits(max_concurrent=1),
                allowed_models=["sonnet"],
            ),
            metadata=core.admin_metadata(),
        )
    key = created.secret
    model_double.script(
        Reply.call_tools([("lookup", {"q": "tides"})], ids=["toolu_r1"]),
        Reply.echo_tool_results(),
    )
    first = run_turn(core, request("tides", tools=TOOLS), key=key)
    assert first.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS

    # The results arrive on a request admission refuses (a model the key may not use).
    refused = answer(first, results(("toolu_r1", "high at 6")))
    refused.model = "opus"
    denied = rpc_error(run_turn(core, refused, key=key))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    # The waiting turn still holds the key's one slot: another turn is refused...
    other = rpc_error(run_turn(core, request("something else"), key=key))
    assert other.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ...and the right request still continues it.
    done = run_turn(core, answer(first, results(("toolu_r1", "high at 6"))), key=key)
    assert done.error is None, done.error
    assert done.of("completed")[0].completed.text == "lookup: high at 6"
    # The slot is free once the turn has ended.
    model_double.script(Reply.text("free again"))
    assert run_turn(core, request("and now?"), key=key).error is None


def test_each_request_of_a_round_trip_books_the_model_calls_made_for_it(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools(
            [("lookup", {"q": "tides"})],
            ids=["toolu_u1"],
            usage={"input_tokens": 1000, "output_tokens": 40},
        ),
        Reply.echo_tool_results(),  # the model double's default: 10 tokens in
    )
    first = run_turn(core, request("tides", tools=TOOLS))
    calls = first.of("completed")[0].completed
    assert calls.finish_reason == ev.FINISH_REASON_TOOL_CALLS
    # The call the model made for this request, though Claude Code's turn goes on.
    assert (calls.usage.input_tokens, calls.usage.output_tokens) == (1000, 40)

    second = run_turn(core, answer(first, results(("toolu_u1", "high at 6"))))
    answered = second.of("completed")[0].completed
    assert answered.text == "lookup: high at 6"
    # The model's answer, not the first request's call again.
    assert 0 < answered.usage.input_tokens < 1000 and answered.usage.output_tokens > 0
    # The usage event streamed on the way says the same.
    streamed = second.of("usage")[-1].usage
    assert streamed.input_tokens == answered.usage.input_tokens
    # And so do the two request-log rows.
    turn_ids = [first.started.started.turn_id, second.started.started.turn_id]
    rows = _log_rows(core, turn_ids)
    calls_row, answer_row = rows[turn_ids[0]].usage, rows[turn_ids[1]].usage
    assert (calls_row.input_tokens, calls_row.output_tokens) == (1000, 40)
    assert answer_row.input_tokens == answered.usage.input_tokens


def _log_rows(core: CoreProcess, turn_ids: list[str]) -> dict[str, admin_pb2.RequestLog]:
    rows: dict[str, admin_pb2.RequestLog] = {}
    deadline = time.monotonic() + 30
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        while len(rows) < len(turn_ids) and time.monotonic() < deadline:
            logs = admin.ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(page_size=200), metadata=core.admin_metadata()
            ).logs
            rows = {r.turn_id: r for r in logs if r.turn_id in turn_ids}
            time.sleep(0.2)
    return rows


def test_results_then_a_new_message_in_one_request_reach_the_model_in_that_order(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    # E.g. a client whose user interrupted the calls and typed on: the results
    # it sends are the calls' results, and the message follows them.
    model_double.script(
        Reply.call_tools(
            [("lookup", {"q": "tides"}), ("get_weather", {"city": "Oslo"})],
            ids=["toolu_m1", "toolu_m2"],
        ),
        Reply.echo_tool_results(chunks=20, delay=0.2),  # cut short by the new message
        Reply.text("Four."),
    )
    first = run_turn(core, request("tides and weather", tools=TOOLS))
    assert first.of("completed")[0].completed.finish_reason == ev.FINISH_REASON_TOOL_CALLS

    second = run_turn(
        core,
        pb.RunTurnRequest(
            model="sonnet",
            previous_turn_id=first.started.started.turn_id,
            messages=[
                results(("toolu_m1", "high at 6"), ("toolu_m2", "aborted by the user")),
                user("never mind: what is 2+2?"),
            ],
            tools=TOOLS,
        ),
    )

    assert second.error is None, second.error
    assert second.of("completed")[0].completed.text == "Four."
    last = model_double.main_requests[-1]
    assert (last.last_user_text or "").endswith("never mind: what is 2+2?")
    # The model had the client's own results, not "the client did not run this tool".
    seen = _tool_results_in(last.messages)
    assert seen["toolu_m1"] == "high at 6" and seen["toolu_m2"] == "aborted by the user"


def _tool_results_in(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Every tool result in a model request's history, by tool use id."""
    found: dict[str, str] = {}
    for message in messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                inner = block.get("content")
                text = (
                    inner
                    if isinstance(inner, str)
                    else "".join(str(p.get("text", "")) for p in inner or [] if isinstance(p, dict))
                )
                found[str(block.get("tool_use_id"))] = text
    return found
