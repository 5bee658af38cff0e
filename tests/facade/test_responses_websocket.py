"""Live: the Responses API's WebSocket mode (GET /v1/responses upgraded), driven
with the official openai SDK's `responses.connect()` through gunicorn, the real
core, the real Claude Code CLI and the model double. Every response's events
and every error event are checked against the OpenResponses spec and the SDK
(tests/facade/openresponses_check.py). Codex over the socket: test_live_codex.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import websockets.exceptions

from http_facade.responses.websocket import (
    MAX_QUEUED,
    MAX_REMEMBERED,
    MAX_WARMUPS,
    ConnectionState,
    Warmup,
)
from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, user_texts
from tests.facade.openresponses_check import (
    check_compaction,
    check_event,
    check_stream,
    check_websocket_error,
)
from tests.facade.test_live_responses_tools import EXEC, MODEL
from tests.facade.test_responses_compact import echo
from tests.model_double import COMPACTION_SUMMARY_PREFIX

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")

Connection = Any  # openai.resources.responses.responses.ResponsesConnection


@contextmanager
def connect(facade: Facade, key: str) -> Iterator[Connection]:
    client = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=key, max_retries=0)
    try:
        with client.responses.connect() as conn:
            yield conn
    finally:
        client.close()


def one_response(conn: Connection) -> list[dict[str, Any]]:
    """The events of one response, checked as a whole stream, or its error event,
    checked as the spec's WebSocketErrorEvent."""
    events: list[dict[str, Any]] = []
    while True:
        raw = json.loads(conn.recv_bytes())
        events.append(raw)
        if raw["type"] in TERMINAL:
            break
    if events[-1]["type"] == "error":
        assert len(events) == 1, events  # an error comes instead of a response
        check_websocket_error(events[0])
    else:
        check_stream(events)
    return events


def final(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["type"] == "response.completed", events[-1]
    response: dict[str, Any] = events[-1]["response"]
    return response


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert [e["type"] for e in events] == ["error"], events
    check_websocket_error(events[0])
    return events[0]


def test_sequential_responses_on_one_connection(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("first answer"), Reply.text("second answer"))

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="Reply with: first", store=False)
        first = one_response(conn)
        conn.response.create(model=MODEL, input="Reply with: second", store=False)
        second = one_response(conn)

    for events, text in ((first, "first answer"), (second, "second answer")):
        # The same events as the SSE stream, numbered from 0 for each response.
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert events[0]["type"] == "response.created"
        assert "response.output_text.delta" in [e["type"] for e in events]
        assert output_text(final(events)) == text
    assert final(first)["id"] != final(second)["id"]
    assert final(first)["store"] is False


def test_continuation_by_previous_response_id_with_only_the_new_input(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("OK"), Reply.text("cobalt"))

    with connect(facade, core.api_key) as conn:
        conn.response.create(
            model=MODEL, input="Remember the code word: cobalt. Reply with OK.", store=False
        )
        first = final(one_response(conn))
        conn.response.create(
            model=MODEL,
            store=False,
            previous_response_id=first["id"],
            input="What is the code word?",
        )
        second = final(one_response(conn))

    assert output_text(second) == "cobalt"
    assert second["previous_response_id"] == first["id"]
    assert second["claude_code"]["session_id"] == first["claude_code"]["session_id"]
    # The session went on: the model saw the first exchange, sent only once.
    texts = user_texts(model_double.main_requests[-1])
    assert any("cobalt. Reply with OK." in t for t in texts)
    assert any("What is the code word?" in t for t in texts)


def test_a_new_connection_cannot_continue_a_store_false_response(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("OK"), Reply.text("stored"), Reply.text("still here"))

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="Remember: copper.", store=False)
        unstored = final(one_response(conn))
        conn.response.create(model=MODEL, input="A stored one.")
        stored = final(one_response(conn))

    with connect(facade, core.api_key) as conn:
        conn.response.create(
            model=MODEL, store=False, previous_response_id=unstored["id"], input="Go on."
        )
        error = error_of(one_response(conn))
        # A stored response continues on any connection; this one still works.
        conn.response.create(model=MODEL, previous_response_id=stored["id"], input="Go on.")
        again = final(one_response(conn))
        conn.response.create(
            model=MODEL, store=False, previous_response_id="resp_missing", input="x"
        )
        missing = error_of(one_response(conn))

    assert error["status"] == 400
    assert error["error"]["code"] == "previous_response_not_found"
    assert error["error"]["param"] == "previous_response_id"
    assert unstored["id"] in error["error"]["message"]
    assert output_text(again) == "still here"
    assert missing["error"]["code"] == "previous_response_not_found"


def test_a_failed_continuation_evicts_what_it_referenced(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("OK"))

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="Remember: ember.", store=False)
        first = final(one_response(conn))
        conn.response.create(
            model=MODEL,
            store=False,
            previous_response_id=first["id"],
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
        failed = error_of(one_response(conn))
        conn.response.create(
            model=MODEL, store=False, previous_response_id=first["id"], input="Reply: stale"
        )
        retry = error_of(one_response(conn))

    assert failed["status"] == 400
    assert retry["error"]["code"] == "previous_response_not_found"
    assert len(model_double.main_requests) == 1


def test_client_tool_round_trip_over_the_socket(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools([("exec_command", {"cmd": "ls"})], ids=["toolu_ws1"]),
        Reply.echo_tool_results("ran: {text}"),
    )

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="list files", tools=[EXEC], store=False)
        events = one_response(conn)
        first = final(events)
        conn.response.create(
            model=MODEL,
            store=False,
            tools=[EXEC],
            previous_response_id=first["id"],
            input=[{"type": "function_call_output", "call_id": "toolu_ws1", "output": "a.txt"}],
        )
        second = final(one_response(conn))

    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    calls = [i for i in first["output"] if i["type"] == "function_call"]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("toolu_ws1", "exec_command", {"cmd": "ls"})
    ]
    assert output_text(second) == "ran: a.txt"


def test_disconnect_cancels_the_running_turn(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.hang(60))

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="take your time", store=False)
        created = json.loads(conn.recv_bytes())
        assert created["type"] == "response.created"
        check_event(created)
        model_double.wait_for_requests(1, timeout=30)
        # A few more wait behind the running one; past that they are refused.
        for i in range(MAX_QUEUED + 1):
            conn.response.create(model=MODEL, input=f"later {i}", store=False)
        while (refused := json.loads(conn.recv_bytes()))["type"] != "error":
            assert refused["type"] == "response.in_progress"
            check_event(refused)
        check_websocket_error(refused)
    # Leaving the block closed the socket mid-turn.

    model_double.wait_for_aborted(1, timeout=10)  # the model call was stopped
    assert refused["type"] == "error" and refused["status"] == 429
    assert len(model_double.main_requests) == 1  # the waiting ones never ran


def test_a_wrong_key_is_refused(facade: Facade) -> None:
    with connect(facade, "sk-cc-wrong") as conn:
        error = error_of([json.loads(conn.recv_bytes())])
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            conn.recv_bytes()

    assert error["status"] == 401
    assert error["error"]["type"] == "invalid_request_error"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_bad_messages_get_error_events_and_the_connection_goes_on(
    facade: Facade, core: CoreProcess
) -> None:
    with connect(facade, core.api_key) as conn:
        conn.send_raw("not json")
        not_json = error_of([json.loads(conn.recv_bytes())])
        # Codex's acknowledgement of a response needs no answer.
        conn.send_raw(json.dumps({"type": "response.processed", "response_id": "resp_x"}))
        conn.send_raw(json.dumps({"type": "session.update"}))
        wrong_type = error_of([json.loads(conn.recv_bytes())])
        conn.send_raw(json.dumps({"type": "response.create", "input": "x", "temperature": 9}))
        invalid = error_of([json.loads(conn.recv_bytes())])
        conn.send_raw(json.dumps({"type": "response.create", "input": "x", "stream": False}))
        not_streamed = error_of([json.loads(conn.recv_bytes())])
        conn.send_raw(json.dumps({"type": "response.create", "input": "x", "stream_id": "a"}))
        lanes = error_of([json.loads(conn.recv_bytes())])

    assert not_json["status"] == 400
    assert wrong_type["error"]["param"] == "type"
    assert invalid["error"]["param"] == "temperature"
    assert not_streamed["error"]["code"] == "unsupported_parameter"
    assert not_streamed["error"]["param"] == "stream"
    assert (lanes["error"]["code"], lanes["error"]["param"]) == ("unknown_parameter", "stream_id")


def _socket_metrics(facade: Facade) -> dict[tuple[str, str], float]:
    """The facade's counts of response.create messages: by (status, outcome),
    and ("ttft", "") for the first-token observations of /v1/responses."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(facade.base_url + "/metrics", timeout=10).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("endpoint") != "/v1/responses":
                continue
            if sample.name == "ccapi_http_requests_total" and labels["method"] == "websocket":
                key = (labels["status"], labels["outcome"])
                counts[key] = counts.get(key, 0) + sample.value
            elif sample.name == "ccapi_http_time_to_first_token_seconds_count":
                counts[("ttft", "")] = counts.get(("ttft", ""), 0) + sample.value
    return counts


def test_each_response_create_is_counted_in_the_http_metrics(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("counted"))
    before = _socket_metrics(facade)
    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="Reply with: counted", store=False)
        assert output_text(final(one_response(conn))) == "counted"
        conn.send_raw(json.dumps({"type": "response.processed", "response_id": "resp_x"}))
        conn.send_raw(json.dumps({"type": "response.create", "input": "x", "temperature": 9}))
        error_of([json.loads(conn.recv_bytes())])
    after = _socket_metrics(facade)

    def rise(key: tuple[str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    # One answered, one refused; the acknowledgement is no request.
    assert rise(("200", "ok")) == 1
    assert rise(("400", "error")) == 1
    assert sum(after.values()) - sum(before.values()) == 3  # the two, and one first token
    assert rise(("ttft", "")) == 1


def test_a_warm_up_runs_nothing_and_its_input_goes_with_the_next_response(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("slate"))
    warm_up_input = [{"type": "message", "role": "user", "content": "Remember: slate."}]

    with connect(facade, core.api_key) as conn:
        # As Codex warms a connection up: the turn's tools and input, no answer wanted.
        conn.send_raw(
            json.dumps(
                {
                    "type": "response.create",
                    "model": MODEL,
                    "store": False,
                    "tools": [EXEC],
                    "input": warm_up_input,
                    "generate": False,
                }
            )
        )
        warm = final(one_response(conn))
        conn.response.create(
            model=MODEL,
            store=False,
            tools=[EXEC],
            previous_response_id=warm["id"],
            input="Which word?",
        )
        answer = final(one_response(conn))

    assert warm["output"] == [] and warm["status"] == "completed"
    assert output_text(answer) == "slate"
    assert answer["previous_response_id"] == warm["id"]
    assert len(model_double.main_requests) == 1  # the warm-up ran no turn
    texts = user_texts(model_double.main_requests[0])
    assert any("Remember: slate." in t for t in texts)
    assert any("Which word?" in t for t in texts)


def test_a_compaction_starts_a_new_chain_over_the_socket(
    facade: Facade, core: CoreProcess, model_double: ModelDouble, sdk: openai.OpenAI
) -> None:
    model_double.script(Reply.text("Noted, Ada."))

    with connect(facade, core.api_key) as conn:
        conn.response.create(model=MODEL, input="My name is Ada. Remember it.")
        first = final(one_response(conn))
        # Compacted over HTTP, as a client does between turns on its socket.
        compacted: dict[str, Any] = json.loads(
            sdk.responses.compact(model=MODEL, previous_response_id=first["id"]).to_json()
        )
        check_compaction(compacted)
        echo(model_double)
        conn.response.create(
            model=MODEL,
            store=False,
            input=[*compacted["output"], {"role": "user", "content": "What is my name?"}],
        )
        resumed = final(one_response(conn))
        from_summary = model_double.main_requests[-1]
        # The new chain goes on on the connection with only the new input.
        conn.response.create(
            model=MODEL, store=False, previous_response_id=resumed["id"], input="And again?"
        )
        again = final(one_response(conn))

    assert output_text(resumed) == "echo: What is my name?"
    texts = user_texts(from_summary)
    # The new chain goes on from the summary; the first exchange is only in it.
    summary = next(i for i, t in enumerate(texts) if COMPACTION_SUMMARY_PREFIX in t)
    assert "My name is Ada" in texts[summary]
    assert summary < next(i for i, t in enumerate(texts) if "What is my name?" in t)
    assert "My name is Ada. Remember it." not in [t.strip() for t in texts]
    assert output_text(again) == "echo: And again?"
    assert again["claude_code"]["session_id"] == resumed["claude_code"]["session_id"]
    went_on = model_double.main_requests[-1]
    assert any(COMPACTION_SUMMARY_PREFIX in t for t in user_texts(went_on))
    assert "echo: What is my name?" in str(went_on.messages)


def test_connection_state_is_bounded() -> None:
    state = ConnectionState()
    for i in range(MAX_REMEMBERED + 1):
        state.remember(f"resp_{i}")
    assert len(state) == MAX_REMEMBERED
    assert not state.knows("resp_0")  # the oldest is forgotten first
    assert state.knows(f"resp_{MAX_REMEMBERED}")
    # Warm-ups hold their input: only the newest few are kept.
    for i in range(MAX_WARMUPS + 1):
        state.remember(f"resp_w{i}", Warmup([{"role": "user", "content": "x"}], None))
    assert not state.knows("resp_w0")
    assert state.warmup(f"resp_w{MAX_WARMUPS}") is not None
    assert len(state) == MAX_REMEMBERED
