"""Responses API wire format against the fake core, checked with the openai SDK's types."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from http_facade import file_summary
from http_facade.responses import protocol
from tests.facade import fake_core as fc
from tests.facade.conftest import AUTH, Served
from tests.facade.fake_core import GOOD_KEY, FakeCore

URL = "/v1/responses"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def sse_events(body: str) -> list[dict[str, Any]]:
    """(event, data) blocks; every block has both and they name the same type."""
    out: list[dict[str, Any]] = []
    assert body.endswith("\n\n")
    for block in body.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == lines[0][len("event: ") :]
        out.append(data)
    return out


async def agentic(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    yield fc.started(turn_id="agent1")
    yield fc.thinking("Let me ")
    yield fc.thinking("think.")
    yield fc.text("I'll write it.")
    yield fc.tool_use("tu1", "Write", "Write fib.py")
    yield fc.Event(
        file_change=events_pb2.FileChange(
            kind=events_pb2.FILE_CHANGE_KIND_CREATED,
            path="fib.py",
            size_bytes=42,
            diff="+def fib(): pass",
        )
    )
    yield fc.tool_result("tu1", excerpt="File created")
    yield fc.tool_use("tu2", "Bash", "Bash: pytest -q")
    yield fc.tool_result("tu2", is_error=True, excerpt="1 failed")
    yield fc.text("Done: ")
    yield fc.text("fib.py")
    yield fc.Event(usage=fc.USAGE)
    blob = events_pb2.FileChange(
        kind=events_pb2.FILE_CHANGE_KIND_CREATED, path="a.bin", size_bytes=3, binary=True
    )
    gone = events_pb2.FileChange(kind=events_pb2.FILE_CHANGE_KIND_DELETED, path="old.txt")
    yield fc.completed(
        "I'll write it.Done: fib.py",
        files=[
            events_pb2.FileChange(
                kind=events_pb2.FILE_CHANGE_KIND_CREATED,
                path="fib.py",
                size_bytes=42,
                diff="+def fib(): pass",
            ),
            blob,
            gone,
        ],
    )


async def cut_short(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    yield fc.started(turn_id="short1")
    yield fc.text("partial")
    yield fc.completed("partial", finish=events_pb2.FINISH_REASON_LENGTH)


async def fails_midway(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    import grpc

    yield fc.started(turn_id="fail1")
    yield fc.text("so far")
    yield fc.failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", "model_rate_limited", 3)


@pytest.fixture(scope="module", autouse=True)
def scripts(fake: FakeCore) -> None:
    fake.scripts["agentic"] = agentic
    fake.scripts["short"] = cut_short
    fake.scripts["fails"] = fails_midway


@pytest.fixture
def sdk(served: Served) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key=GOOD_KEY, max_retries=0)


def last_request(fake: FakeCore) -> agent_pb2.RunTurnRequest:
    return fake.requests[-1][0]


async def test_create_wire_format(client: httpx.AsyncClient, fake: FakeCore) -> None:
    r = await client.post(
        URL,
        headers=AUTH,
        json={
            "model": "agentic",
            "input": "write fib",
            "instructions": "Be terse.",
            "metadata": {"k": "v"},
            "max_output_tokens": 500,
            "temperature": 0.2,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-session-id"] == "s1"
    data = r.json()
    Response.model_validate(data)  # every field the SDK's schema requires, right types
    protocol.ResponseObject.model_validate(data)
    assert data["id"] == "resp_agent1" and data["object"] == "response"
    assert data["status"] == "completed" and data["completed_at"] >= data["created_at"]
    assert data["instructions"] == "Be terse." and data["metadata"] == {"k": "v"}
    assert data["max_output_tokens"] == 500 and data["temperature"] == 0.2
    assert data["tools"] == [] and data["tool_choice"] == "auto" and data["store"] is True
    assert data["error"] is None and data["incomplete_details"] is None
    assert data["usage"] == {
        "input_tokens": 18,
        "input_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 3},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 25,
    }
    kinds = [(i["type"], i.get("name")) for i in data["output"]]
    assert kinds == [
        ("reasoning", None),
        ("message", None),
        ("mcp_call", "Write"),
        ("mcp_call", "Bash"),
        ("message", None),
    ]
    assert data["output"][0]["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    write, bash = data["output"][2], data["output"][3]
    assert write["server_label"] == "claude_code" and write["status"] == "completed"
    assert write["output"] == "File created" and write["arguments"] == "{}"
    assert bash["status"] == "failed" and bash["error"]["type"] == "mcp_tool_execution_error"
    files = {f["path"]: f for f in data["claude_code"]["files"]}
    assert files["fib.py"]["kind"] == "created" and files["a.bin"]["binary"]
    assert files["old.txt"]["kind"] == "deleted"
    assert data["claude_code"]["session_id"] == "s1" and data["claude_code"]["num_turns"] == 2
    # No summary is pasted into Responses output: files are in claude_code.
    assert file_summary.MARKER not in json.dumps(data["output"])

    sent = last_request(fake)
    assert sent.instructions == "Be terse." and sent.store
    assert sent.options.max_output_tokens == 500 and dict(sent.metadata) == {"k": "v"}
    assert sent.origin.endpoint == "/v1/responses"
    assert [m.role for m in sent.messages] == [content_pb2.ROLE_USER]


async def test_sdk_create_and_output_text(sdk: openai.AsyncOpenAI) -> None:
    done = await sdk.responses.create(model="agentic", input="go")
    assert done.output_text == "I'll write it.Done: fib.py"
    assert done.output[2].type == "mcp_call"
    assert (done.model_extra or {})["claude_code"]["turn_id"] == "agent1"


async def test_stream_event_sequence(client: httpx.AsyncClient) -> None:
    r = await client.post(
        URL, headers=AUTH, json={"model": "agentic", "input": "go", "stream": True}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    for ev in events:
        EVENTS.validate_python(ev)  # each event is a valid OpenAI stream event
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.failed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    final = events[-1]["response"]
    Response.model_validate(final)
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 25
    assert [i["id"] for i in final["output"]] == [
        e["item"]["id"] for e in events if e["type"] == "response.output_item.done"
    ]


async def test_sdk_stream_helper(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.responses.stream(model="agentic", input="go") as stream:
        seen = [ev.type async for ev in stream]
        final = await stream.get_final_response()
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    assert final.output_text == "I'll write it.Done: fib.py"
    assert [o.type for o in final.output].count("mcp_call") == 2


async def test_incomplete_and_failed_streams(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json={"model": "short", "input": "x"})
    data = r.json()
    assert data["status"] == "incomplete"
    assert data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["output"][0]["status"] == "incomplete"
    r = await client.post(URL, headers=AUTH, json={"model": "short", "input": "x", "stream": True})
    assert sse_events(r.text)[-1]["type"] == "response.incomplete"

    r = await client.post(URL, headers=AUTH, json={"model": "fails", "input": "x", "stream": True})
    events = sse_events(r.text)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {
        "code": "rate_limit_exceeded",
        "message": "slow down",
    }
    Response.model_validate(events[-1]["response"])
    # Non-streaming, the same failure is the HTTP error of the central table.
    r = await client.post(URL, headers=AUTH, json={"model": "fails", "input": "x"})
    assert r.status_code == 429 and r.headers["retry-after"] == "3"


async def test_input_items_and_previous_response(client: httpx.AsyncClient, fake: FakeCore) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    r = await client.post(
        URL,
        headers=AUTH,
        json={
            "model": "echo",
            "previous_response_id": "resp_t0",
            "store": False,
            "reasoning": {"effort": "minimal", "summary": "auto"},
            "input": [
                {"role": "developer", "content": "Use tabs."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "hi"},
                        {"type": "input_image", "image_url": png, "detail": "auto"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "mcp_call",
                    "id": "mcp_1",
                    "server_label": "claude_code",
                    "name": "Write",
                    "arguments": "{}",
                    "output": "ok",
                    "status": "completed",
                },
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "earlier answer"
                            + file_summary.render(
                                [{"path": "a.py", "kind": "created", "size_bytes": 1, "diff": "+x"}]
                            ),
                            "annotations": [],
                        }
                    ],
                },
                {"role": "user", "content": "and now?"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["previous_response_id"] == "resp_t0" and r.json()["store"] is False
    sent = last_request(fake)
    assert sent.previous_turn_id == "t0" and not sent.store
    assert sent.options.reasoning_effort == "low"
    roles = [m.role for m in sent.messages]
    assert roles == [
        content_pb2.ROLE_DEVELOPER,
        content_pb2.ROLE_USER,
        content_pb2.ROLE_ASSISTANT,
        content_pb2.ROLE_USER,
    ]
    assert sent.messages[1].content[1].image.media_type == "image/png"
    assert sent.messages[2].content[0].text == "earlier answer"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"type": "mcp_call", "server_label": "other", "name": "x"}]},
            "input[0].server_label",
        ),
    ],
)
async def test_unsupported_parameters(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    r = await client.post(URL, headers=AUTH, json={"model": "echo", "input": "x", **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_parameter" and err["param"] == param


async def test_neutral_values_and_request_errors(client: httpx.AsyncClient) -> None:
    ok = {
        "tools": [],
        "tool_choice": "auto",
        "background": False,
        "include": [],
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "truncation": "auto",
        "parallel_tool_calls": False,
    }
    r = await client.post(URL, headers=AUTH, json={"model": "echo", "input": "x", **ok})
    assert r.status_code == 200, r.text
    assert r.json()["parallel_tool_calls"] is False
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"input": []}, "input", "invalid_value"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0]", "invalid_value"),
        ({"input": [{"role": "user", "content": 3}]}, "input[0].content", "invalid_value"),
        ({"previous_response_id": "t123"}, "previous_response_id", "invalid_value"),
        ({"frobnicate": 1}, "frobnicate", "unknown_parameter"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
    ]
    for extra, param, code in cases:
        r = await client.post(URL, headers=AUTH, json={"model": "echo", "input": "x", **extra})
        assert r.status_code == 400, (extra, r.text)
        err = r.json()["error"]
        assert (err["param"], err["code"]) == (param, code), (extra, err)
    r = await client.post(URL, headers=AUTH, json={"input": "x"})
    assert r.status_code == 404  # no model given -> "" -> the fake core knows no such model


def _stored_turn() -> agent_pb2.Turn:
    turn = agent_pb2.Turn(
        id="tstored",
        session_id="s9",
        parent_turn_id="tparent",
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=1_700_000_000,
        completed_at=1_700_000_005,
        instructions="Be brief.",
        output_text="All done.",
        reasoning="Hmm.",
        finish_reason=events_pb2.FINISH_REASON_STOP,
        tool_uses=[events_pb2.ToolUse(id="tu1", name="Bash", input_json='{"command":"ls"}')],
        tool_results=[events_pb2.ToolResult(tool_use_id="tu1", output_excerpt="a.py")],
        files=[
            events_pb2.FileChange(
                kind=events_pb2.FILE_CHANGE_KIND_MODIFIED, path="a.py", size_bytes=5, diff="-a\n+b"
            )
        ],
        usage=fc.USAGE,
        metadata={"k": "v"},
    )
    for i in range(5):
        turn.input.append(
            content_pb2.Message(
                role=content_pb2.ROLE_USER, content=[content_pb2.ContentPart(text=f"q{i}")]
            )
        )
    return turn


async def test_retrieve_delete_cancel_input_items(sdk: openai.AsyncOpenAI, fake: FakeCore) -> None:
    fake.turns["tstored"] = _stored_turn()
    got = await sdk.responses.retrieve("resp_tstored")
    assert got.id == "resp_tstored" and got.status == "completed"
    assert got.output_text == "All done." and got.previous_response_id == "resp_tparent"
    assert [o.type for o in got.output] == ["reasoning", "mcp_call", "message"]
    assert got.instructions == "Be brief." and got.metadata == {"k": "v"}
    assert got.completed_at == 1_700_000_005
    assert (got.model_extra or {})["claude_code"]["files"][0]["path"] == "a.py"

    page = await sdk.responses.input_items.list("resp_tstored", limit=2, order="asc")
    assert [i.id for i in page.data] == ["msg_tstored_in0", "msg_tstored_in1"]
    assert page.has_more
    every = [i.id async for i in sdk.responses.input_items.list("resp_tstored", limit=2)]
    assert every == [f"msg_tstored_in{i}" for i in (4, 3, 2, 1, 0)]  # default order: desc
    raw = await sdk.responses.input_items.with_raw_response.list("resp_tstored", limit=3)
    ResponseItemList.model_validate(json.loads(raw.text))

    fake.turns["trun"] = agent_pb2.Turn(
        id="trun", session_id="s9", model="m", status=agent_pb2.TURN_STATUS_IN_PROGRESS
    )
    assert (await sdk.responses.retrieve("resp_trun")).status == "in_progress"
    cancelled = await sdk.responses.cancel("resp_trun")
    assert cancelled.status == "cancelled"

    await sdk.responses.delete("resp_tstored")
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.responses.retrieve("resp_tstored")
    assert caught.value.body["message"] == "Response with id 'resp_tstored' not found."  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve("not-a-response-id")
    with pytest.raises(openai.BadRequestError):
        await sdk.responses.input_items.list("resp_trun", limit=500)
    with pytest.raises(openai.AuthenticationError):
        bad = openai.AsyncOpenAI(base_url=str(sdk.base_url), api_key="nope", max_retries=0)
        await bad.responses.retrieve("resp_trun")
