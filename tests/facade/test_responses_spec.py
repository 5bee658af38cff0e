"""Every Responses object and event kind the facade emits, against the fake core,
checked with the OpenResponses spec's types and the openai SDK's
(tests/facade/openresponses_check.py); assistant phases in and out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from tests.facade import fake_core as fc
from tests.facade.conftest import AUTH
from tests.facade.fake_core import FakeCore
from tests.facade.openresponses_check import (
    check_input_items,
    check_response,
    check_stream,
    sse_events,
)

URL = "/v1/responses"
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PATCH_TOOL: dict[str, Any] = {"type": "custom", "name": "apply_patch", "description": "Patch."}


async def working(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    """Thinks, says what it will do, runs two tools, thinks again, answers."""
    yield fc.started(turn_id="work1")
    yield fc.thinking("Plan.")
    yield fc.text("I'll write it.")
    yield fc.tool_use("tu1", "Write", "Write fib.py")
    yield fc.tool_result("tu1", excerpt="File created")
    yield fc.tool_use("tu2", "Bash", "Bash: pytest -q")
    yield fc.tool_result("tu2", is_error=True, excerpt="1 failed")
    yield fc.text("Fixing. ")
    yield fc.thinking("Look again.")
    yield fc.text("Done.")
    yield fc.Event(usage=fc.USAGE)
    yield fc.completed("I'll write it.Fixing. Done.")


def _call(call_id: str, name: str, kind: Any, chunks: list[str]) -> list[fc.Event]:
    custom = kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM
    call = content_pb2.ClientToolCall(call_id=call_id, name=name, kind=kind)
    if custom:
        call.input = "".join(chunks)
    else:
        call.arguments_json = "".join(chunks)
    return [
        fc.Event(
            tool_call_started=events_pb2.ClientToolCallStarted(
                index=0, call_id=call_id, name=name, kind=kind
            )
        ),
        *(
            fc.Event(tool_call_delta=events_pb2.ClientToolCallDelta(call_id=call_id, delta=c))
            for c in chunks
        ),
        fc.Event(tool_call_done=events_pb2.ClientToolCallDone(call=call)),
    ]


async def client_calls(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    """Says what it will do, then calls a client function and a custom tool."""
    yield fc.started(turn_id="calls1")
    yield fc.text("Checking the weather and patching.")
    for ev in _call(
        "call_w", "get_weather", content_pb2.CLIENT_TOOL_KIND_FUNCTION, ['{"ci', 'ty":"Rome"}']
    ):
        yield ev
    for ev in _call(
        "call_p", "apply_patch", content_pb2.CLIENT_TOOL_KIND_CUSTOM, ["*** Begin", " Patch"]
    ):
        yield ev
    yield fc.Event(usage=fc.USAGE)
    yield fc.completed(
        "Checking the weather and patching.", finish=events_pb2.FINISH_REASON_TOOL_CALLS
    )


async def cut_short(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    yield fc.started(turn_id="short2")
    yield fc.thinking("Hmm.")
    yield fc.text("partial")
    yield fc.Event(usage=fc.USAGE)
    yield fc.completed("partial", finish=events_pb2.FINISH_REASON_LENGTH)


async def fails_midway(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    yield fc.started(turn_id="fail2")
    yield fc.tool_use("tu1", "Bash", "Bash: sleep")
    yield fc.text("so far")
    yield fc.failed(grpc.StatusCode.UNAVAILABLE, "model overloaded", "model_unavailable")


@pytest.fixture(scope="module", autouse=True)
def scripts(fake: FakeCore) -> None:
    fake.scripts["working"] = working
    fake.scripts["calls"] = client_calls
    fake.scripts["short2"] = cut_short
    fake.scripts["fails2"] = fails_midway


async def _stream(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post(URL, headers=AUTH, json={**body, "stream": True})
    assert r.status_code == 200, r.text
    return sse_events(r.text)


async def test_builtin_tools_turn_streamed_and_not_with_phases(client: httpx.AsyncClient) -> None:
    body = {"model": "working", "input": "write fib"}
    r = await client.post(URL, headers=AUTH, json=body)
    assert r.status_code == 200, r.text
    plain = r.json()
    check_response(plain)
    events = await _stream(client, body)
    final = check_stream(events)
    for response in (plain, final):
        messages = [i for i in response["output"] if i["type"] == "message"]
        # Text before tool calls or more thinking is commentary; the last answer is final.
        assert [(m["content"][0]["text"], m["phase"]) for m in messages] == [
            ("I'll write it.", "commentary"),
            ("Fixing. ", "commentary"),
            ("Done.", "final_answer"),
        ]
    # The phase is not known when a message opens: added has none, done has it.
    for ev in events:
        if ev["type"] == "response.output_item.added" and ev["item"]["type"] == "message":
            assert "phase" not in ev["item"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i.get("phase") for i in done if i["type"] == "message"] == [
        "commentary",
        "commentary",
        "final_answer",
    ]


async def test_sampling_fields_echo_what_was_sent_or_the_defaults(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(URL, headers=AUTH, json={"model": "echo", "input": "x"})
    defaults = r.json()
    check_response(defaults)
    assert (
        defaults["temperature"],
        defaults["top_p"],
        defaults["presence_penalty"],
        defaults["frequency_penalty"],
        defaults["top_logprobs"],
    ) == (1.0, 1.0, 0.0, 0.0, 0)
    sent = {
        "temperature": 0.2,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "top_logprobs": 0,
    }
    r = await client.post(URL, headers=AUTH, json={"model": "echo", "input": "x", **sent})
    assert r.status_code == 200, r.text
    check_response(r.json())
    assert {k: r.json()[k] for k in sent} == sent
    r = await client.post(
        URL, headers=AUTH, json={"model": "echo", "input": "x", "presence_penalty": 3}
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "presence_penalty"


async def test_client_function_and_custom_tool_calls(client: httpx.AsyncClient) -> None:
    body = {"model": "calls", "input": "weather?", "tools": [WEATHER, PATCH_TOOL]}
    r = await client.post(URL, headers=AUTH, json=body)
    assert r.status_code == 200, r.text
    plain = r.json()
    check_response(plain)
    final = check_stream(await _stream(client, body))
    for response in (plain, final):
        kinds = [(i["type"], i.get("phase")) for i in response["output"]]
        assert kinds == [
            ("message", "commentary"),
            ("function_call", None),
            ("custom_tool_call", None),
        ]
        assert response["output"][1]["arguments"] == '{"city":"Rome"}'
        # A function tool is echoed with every field the spec requires.
        assert response["tools"][0] == {
            **WEATHER,
            "description": None,
            "strict": None,
        }


async def test_incomplete_and_failed(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json={"model": "short2", "input": "x"})
    plain = r.json()
    check_response(plain)
    assert plain["status"] == "incomplete"
    assert plain["incomplete_details"] == {"reason": "max_output_tokens"}
    events = await _stream(client, {"model": "short2", "input": "x"})
    final = check_stream(events)
    types = [e["type"] for e in events]
    assert types[-1] == "response.incomplete" and "response.completed" not in types
    assert final["output"][-1]["status"] == "incomplete"
    assert final["output"][-1]["phase"] == "final_answer"
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 2

    events = await _stream(client, {"model": "fails2", "input": "x"})
    final = check_stream(events)
    assert final["status"] == "failed" and final["error"]["code"] == "server_error"
    assert [i["status"] for i in final["output"]] == ["incomplete", "incomplete"]


async def test_json_schema_format_is_echoed_in_full(client: httpx.AsyncClient) -> None:
    fmt = {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}
    r = await client.post(
        URL, headers=AUTH, json={"model": "echo", "input": "x", "text": {"format": fmt}}
    )
    assert r.status_code == 200, r.text
    check_response(r.json())
    assert r.json()["text"]["format"] == {**fmt, "description": None, "strict": False}


def _stored(turn_id: str, status: Any) -> agent_pb2.Turn:
    turn = agent_pb2.Turn(
        id=turn_id,
        session_id="s9",
        model="claude-sonnet-4-5",
        status=status,
        created_at=1_700_000_000,
        completed_at=1_700_000_005,
        usage=fc.USAGE,
        options=agent_pb2.TurnOptions(temperature=0.3, presence_penalty=1.0),
        items=[
            agent_pb2.TurnItem(text="Looking."),
            agent_pb2.TurnItem(
                tool_use=events_pb2.ToolUse(id="tu1", name="Read", input_json='{"f":"a"}')
            ),
            agent_pb2.TurnItem(tool_result=events_pb2.ToolResult(tool_use_id="tu1")),
            agent_pb2.TurnItem(text="It says a."),
        ],
    )
    text = content_pb2.ContentPart

    def message(role: Any, body: str, phase: str = "") -> content_pb2.Message:
        return content_pb2.Message(role=role, content=[text(text=body)], phase=phase)

    turn.input.extend(
        [
            message(content_pb2.ROLE_USER, "read a"),
            message(content_pb2.ROLE_ASSISTANT, "Reading.", "commentary"),
            message(content_pb2.ROLE_ASSISTANT, "It is empty.", "final_answer"),
            message(content_pb2.ROLE_USER, "again"),
        ]
    )
    return turn


async def test_stored_responses_and_input_items(client: httpx.AsyncClient, fake: FakeCore) -> None:
    fake.turns["tphase"] = _stored("tphase", agent_pb2.TURN_STATUS_COMPLETED)
    got = (await client.get(f"{URL}/resp_tphase", headers=AUTH)).json()
    check_response(got)
    assert [(i["type"], i.get("phase")) for i in got["output"]] == [
        ("message", "commentary"),
        ("mcp_call", None),
        ("message", "final_answer"),
    ]
    assert (got["temperature"], got["top_p"], got["presence_penalty"]) == (0.3, 1.0, 1.0)

    page = (await client.get(f"{URL}/resp_tphase/input_items?order=asc", headers=AUTH)).json()
    check_input_items(page)
    assert [(i["role"], i.get("phase")) for i in page["data"]] == [
        ("user", None),
        ("assistant", "commentary"),
        ("assistant", "final_answer"),
        ("user", None),
    ]
    assert page["data"][1]["content"][0]["type"] == "output_text"

    fake.turns["tinc"] = _stored("tinc", agent_pb2.TURN_STATUS_INCOMPLETE)
    check_response((await client.get(f"{URL}/resp_tinc", headers=AUTH)).json())
    fake.turns["trun2"] = agent_pb2.Turn(
        id="trun2", session_id="s9", model="m", status=agent_pb2.TURN_STATUS_IN_PROGRESS
    )
    check_response((await client.get(f"{URL}/resp_trun2", headers=AUTH)).json())
    cancelled = (await client.post(f"{URL}/resp_trun2/cancel", headers=AUTH)).json()
    check_response(cancelled)
    assert cancelled["status"] == "cancelled"


async def test_input_assistant_phase_reaches_the_core(
    client: httpx.AsyncClient, fake: FakeCore
) -> None:
    history = [
        {"role": "user", "content": "fix it"},
        {"type": "message", "role": "assistant", "phase": "commentary", "content": "Looking."},
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "get_weather",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "phase": "final_answer",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        },
        {"role": "assistant", "phase": "commentary", "content": "More."},
        {"role": "user", "content": "thanks"},
    ]
    r = await client.post(
        URL, headers=AUTH, json={"model": "echo", "input": history, "tools": [WEATHER]}
    )
    assert r.status_code == 200, r.text
    sent = fake.requests[-1][0]
    assistants = [
        (json.dumps([p.WhichOneof("part") for p in m.content]), m.phase)
        for m in sent.messages
        if m.role == content_pb2.ROLE_ASSISTANT
    ]
    # The commentary and its call are one message (as the core stored that turn);
    # a message of another phase after text starts its own.
    assert assistants == [
        ('["text", "tool_call"]', "commentary"),
        ('["text"]', "final_answer"),
        ('["text"]', "commentary"),
    ]
