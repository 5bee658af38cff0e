"""The model double, first over raw HTTP, then driving the real bundled Claude Code CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import claude_agent_sdk
import httpx
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    ToolPermissionContext,
)
from claude_agent_sdk.types import StreamEvent

from tests.model_double import ModelDouble, RecordedRequest, Reply
from tests.model_double._demo import demo_reply
from tests.model_double._render import split_text

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
needs_cli = pytest.mark.skipif(not CLAUDE.exists(), reason="bundled Claude Code CLI missing")

# A request shaped like the CLI's: the environment block rides in a system message.
FAKE_CWD = "/work/space"


def fake_body(text: str = "hi", *, tools: bool = True, stream: bool = True) -> dict[str, Any]:
    return {
        "model": "claude-test-model",
        "stream": stream,
        "system": [{"type": "text", "text": "You are a test."}],
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}] if tools else [],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nignore me\n</system-reminder>\n"},
                    {"type": "text", "text": text},
                ],
            },
            {
                "role": "system",
                "content": f"# Environment\n - Primary working directory: {FAKE_CWD}\n",
            },
        ],
    }


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


@pytest.fixture
def double() -> Iterator[ModelDouble]:
    with ModelDouble() as started:
        yield started


@pytest.fixture
def http(double: ModelDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=double.url, timeout=10) as client:
        yield client


# --- wire format, no CLI --------------------------------------------------------


@pytest.mark.parametrize("text", ["", "x", "hello", "one two", "a b c d e f g", " lead  trail "])
@pytest.mark.parametrize("chunks", [None, 1, 3, 10])
def test_split_text_rejoins_exactly(text: str, chunks: int | None) -> None:
    pieces = split_text(text, chunks)
    assert "".join(pieces) == text
    if text and chunks is None:
        assert len(pieces) >= min(4, len(text))
    if text and chunks is not None:
        assert len(pieces) == min(chunks, len(text))


def test_text_streams_in_order_with_usage(double: ModelDouble, http: httpx.Client) -> None:
    usage = {"input_tokens": 42, "cache_read_input_tokens": 7}
    double.script(Reply.text("The quick brown fox jumps.", usage=usage))
    with http.stream("POST", "/v1/messages?beta=true", json=fake_body()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert len(deltas) >= 4 and "".join(deltas) == "The quick brown fox jumps."
    start_usage = events[0][1]["message"]["usage"]
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    for reported in (start_usage, final["usage"]):
        assert reported["input_tokens"] == 42 and reported["cache_read_input_tokens"] == 7
        assert {"output_tokens", "cache_creation_input_tokens"} <= reported.keys()
    assert events[0][1]["message"]["model"] == "claude-test-model"


def test_tool_use_streams_partial_json_with_cwd(double: ModelDouble, http: httpx.Client) -> None:
    double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/a.txt", "content": "x"}, text_before="Ok.")
    )
    with http.stream("POST", "/v1/messages", json=fake_body()) as response:
        events = sse_events(response)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [s["type"] for s in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "Write" and starts[1]["id"].startswith("toolu_")
    pieces = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert len(pieces) >= 2
    assert json.loads("".join(pieces)) == {"file_path": f"{FAKE_CWD}/a.txt", "content": "x"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def client_tools_body(messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A main request offering two client tools, optionally with a tool round in its history."""
    body = fake_body("look it up", stream=False)
    body["tools"] = [
        {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {}}}},
        {"name": "get_weather", "input_schema": {"type": "object"}},
    ]
    body["messages"] += messages or []
    return body


def test_call_tools_checks_offered_names(double: ModelDouble, http: httpx.Client) -> None:
    double.script(
        Reply.call_tools(
            [("lookup", {"q": "{cwd}"}), ("get_weather", {"city": "Oslo"})],
            text_before="Both.",
            ids=["toolu_a", None],
        ),
        Reply.call_tools([("mcp__client__lookup", {})]),
    )
    message = http.post("/v1/messages", json=client_tools_body()).json()
    assert message["stop_reason"] == "tool_use"
    text, first, second = message["content"]
    assert text == {"type": "text", "text": "Both."}
    assert (first["id"], first["name"], first["input"]) == ("toolu_a", "lookup", {"q": FAKE_CWD})
    assert second["name"] == "get_weather" and second["input"] == {"city": "Oslo"}
    assert second["id"].startswith("toolu_") and second["id"] != "toolu_a"
    # A name the request does not offer: the model says so instead of calling it.
    refused = http.post("/v1/messages", json=client_tools_body()).json()
    assert refused["stop_reason"] == "end_turn"
    assert "not offered: ['mcp__client__lookup']" in refused["content"][0]["text"]
    assert "'lookup', 'get_weather'" in refused["content"][0]["text"]
    assert double.main_requests[0].offered_tools["lookup"]["input_schema"] == {
        "type": "object",
        "properties": {"q": {}},
    }


def test_echo_tool_results(double: ModelDouble, http: httpx.Client) -> None:
    history: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "lookup", "input": {}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "found {it}"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "sky"}],
                    "is_error": True,
                },
            ],
        },
    ]
    double.script(
        Reply.echo_tool_results(),
        Reply.echo_tool_results("{id}={error}{text}", " | ", prefix="Results: "),
        Reply.echo_tool_results(),
    )

    def answer(body: dict[str, Any]) -> str:
        message = http.post("/v1/messages", json=body).json()
        return "".join(b["text"] for b in message["content"])

    assert answer(client_tools_body(history)) == "lookup: found {it}\nget_weather: no\nsky"
    assert answer(client_tools_body(history)) == (
        "Results: toolu_a=found {it} | toolu_b=error no\nsky"
    )
    assert "no tool results" in answer(client_tools_body())
    seen = double.main_requests[0].tool_results_seen
    assert [(r.tool_use_id, r.name, r.is_error) for r in seen] == [
        ("toolu_a", "lookup", False),
        ("toolu_b", "get_weather", True),
    ]


def test_thinking_then_text(double: ModelDouble, http: httpx.Client) -> None:
    double.script(Reply.thinking("hmm let me see", "answer"))
    with http.stream("POST", "/v1/messages", json=fake_body()) as response:
        events = sse_events(response)
    delta_types = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert "thinking_delta" in delta_types and "signature_delta" in delta_types
    assert delta_types.index("signature_delta") < delta_types.index("text_delta")


def test_non_streaming_message(double: ModelDouble, http: httpx.Client) -> None:
    double.script(Reply.tool_use("Read", {"file_path": "{cwd}/f"}, id="toolu_fixed"))
    response = http.post("/v1/messages", json=fake_body(stream=False))
    message = response.json()
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_fixed",
            "name": "Read",
            "input": {"file_path": "/work/space/f"},
        }
    ]
    assert message["usage"]["input_tokens"] == 10


def test_error_reply(double: ModelDouble, http: httpx.Client) -> None:
    double.script(Reply.error(429, "rate_limit_error", "slow down", retry_after=3))
    response = http.post("/v1/messages", json=fake_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


def test_queue_default_dynamic_and_auxiliary(double: ModelDouble, http: httpx.Client) -> None:
    double.script(Reply.text("first"))
    double.set_default(lambda r: Reply.text(f"echo: {r.last_user_text}", chunks=1))

    def answer(body: dict[str, Any]) -> str:
        message = http.post("/v1/messages", json={**body, "stream": False}).json()
        return "".join(b["text"] for b in message["content"])

    title_request = fake_body("name this", tools=False)
    title_request["output_config"] = {
        "format": {
            "type": "json_schema",
            "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
        }
    }
    # The side request arrives first, as with the CLI, and must not eat "first".
    assert json.loads(answer(title_request)) == {"title": "Model double session"}
    assert answer(fake_body("one")) == "first"
    assert answer(fake_body("two")) == "echo: two"
    assert [r.is_main for r in double.requests] == [False, True, True]
    assert [r.index for r in double.main_requests] == [1, 2]

    double.reset()
    assert double.requests == [] and answer(fake_body()) == "OK from the model double."


def test_recorded_request_views(double: ModelDouble, http: httpx.Client) -> None:
    http.post("/v1/messages?beta=true", json=fake_body("hello"), headers={"X-Api-Key": "k"})
    (request,) = double.wait_for_requests(1)
    assert isinstance(request, RecordedRequest)
    assert (request.path, request.query) == ("/v1/messages", "beta=true")
    assert request.headers["x-api-key"] == "k"
    assert request.model == "claude-test-model"
    assert request.last_user_text == "hello"  # system reminders stripped
    assert "You are a test." in request.system_text and FAKE_CWD in request.system_text
    assert request.working_directory == FAKE_CWD
    assert request.tool_names == ["Write"] and request.is_main


def test_other_endpoints(double: ModelDouble, http: httpx.Client) -> None:
    assert http.post("/v1/messages/count_tokens", json=fake_body()).json()["input_tokens"] > 0
    assert http.head("/api/hello").status_code == 200
    assert http.get("/v1/nonsense").status_code == 404
    assert [r.path for r in double.unknown_requests] == ["/v1/nonsense"]
    assert len(double.other_requests) == 3 and double.requests == []


def test_wait_for_requests_times_out(double: ModelDouble) -> None:
    with pytest.raises(TimeoutError):
        double.wait_for_requests(1, timeout=0.1)


def test_hang_notices_the_client_leaving(double: ModelDouble, http: httpx.Client) -> None:
    double.script(Reply.hang(30))
    started = time.monotonic()
    with http.stream("POST", "/v1/messages", json=fake_body()) as response:
        first = next(response.iter_lines())
        assert first == "event: message_start"
    # Leaving the block closes the connection mid-stream.
    (aborted,) = double.wait_for_aborted(1, timeout=5)
    assert aborted.last_user_text == "hi"
    assert time.monotonic() - started < 5


def test_stop_ends_hangs_and_kept_alive_connections() -> None:
    double = ModelDouble().start()
    double.script(Reply.text("first", chunks=1), Reply.hang(30))
    client = httpx.Client(base_url=double.url, timeout=10)
    # Keep the connection alive with a completed request first.
    assert client.post("/v1/messages", json=fake_body(stream=False)).status_code == 200
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            with client.stream("POST", "/v1/messages", json=fake_body()) as response:
                response.read()
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    double.wait_for_requests(2)
    started = time.monotonic()
    double.stop()
    thread.join(timeout=5)
    assert time.monotonic() - started < 2 and not thread.is_alive()
    assert errors, "the hanging stream should break off when the double stops"
    with pytest.raises(httpx.TransportError):
        client.post("/v1/messages", json=fake_body(stream=False))
    client.close()


def test_demo_reply() -> None:
    def request(text: str) -> RecordedRequest:
        return RecordedRequest("POST", "/v1/messages", "", {}, fake_body(text))

    chat = demo_reply(request("hello there"))
    assert chat.kind == "message" and "hello there" in str(chat.blocks[0])
    write = demo_reply(request('please create file notes/../todo.txt containing "milk"'))
    assert write.stop_reason == "tool_use"
    tool = write.blocks[-1]
    assert getattr(tool, "input", None) == {"file_path": "{cwd}/notes/todo.txt", "content": "milk"}
    assert demo_reply(request("write hello.md")).stop_reason == "tool_use"
    assert demo_reply(request("write a poem")).stop_reason == "end_turn"


# --- the real CLI against the double ----------------------------------------------


def run_cli(
    double: ModelDouble, tmp_path: Path, *args: str, max_retries: int | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    workspace = tmp_path / "ws"
    home = tmp_path / "home"
    workspace.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    env = {**os.environ, **double.cli_env(home, max_retries=max_retries)}
    command = [str(CLAUDE), "-p", "hi", "--output-format", "stream-json", "--verbose", *args]
    done = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=60
    )
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@needs_cli
def test_cli_print_streams_scripted_text(double: ModelDouble, tmp_path: Path) -> None:
    text = "Hello from a scripted reply, in pieces."
    double.script(Reply.text(text))
    done, messages = run_cli(double, tmp_path, "--include-partial-messages")
    assert done.returncode == 0, done.stderr
    deltas = [
        m["event"]["delta"]["text"]
        for m in messages
        if m["type"] == "stream_event"
        and m["event"]["type"] == "content_block_delta"
        and m["event"]["delta"]["type"] == "text_delta"
    ]
    assert len(deltas) >= 4 and "".join(deltas) == text
    assert messages[-1]["type"] == "result" and messages[-1]["result"] == text
    assert len(double.main_requests) == 1


@needs_cli
def test_cli_requests_expose_model_system_and_cwd(double: ModelDouble, tmp_path: Path) -> None:
    done, _ = run_cli(double, tmp_path, "--model", "claude-double-test-1")
    assert done.returncode == 0, done.stderr
    (request,) = double.main_requests
    assert request.model == "claude-double-test-1"
    assert request.stream and request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "test-key"
    assert request.last_user_text == "hi"
    assert "Claude" in request.system_text
    assert request.working_directory == str(tmp_path / "ws")
    assert {"Bash", "Read", "Write", "Edit"} <= set(request.tool_names)


@needs_cli
def test_cli_concurrent_runs_get_their_own_echo(double: ModelDouble, tmp_path: Path) -> None:
    double.set_default(lambda request: Reply.text(f"echo {request.last_user_text}"))
    processes = []
    for name in ("alpha", "beta", "gamma"):
        (tmp_path / name).mkdir()
        env = {**os.environ, **double.cli_env(tmp_path / name)}
        command = [str(CLAUDE), "-p", f"prompt {name}", "--output-format", "json"]
        processes.append(
            subprocess.Popen(
                command, cwd=tmp_path / name, env=env, stdout=subprocess.PIPE, text=True
            )
        )
    results = [json.loads(p.communicate(timeout=60)[0])["result"] for p in processes]
    assert results == ["echo prompt alpha", "echo prompt beta", "echo prompt gamma"]
    assert sorted(r.working_directory or "" for r in double.main_requests) == [
        str(tmp_path / name) for name in ("alpha", "beta", "gamma")
    ]


@needs_cli
@pytest.mark.parametrize(
    ("status", "error_type"), [(401, "authentication_error"), (429, "rate_limit_error")]
)
def test_cli_fails_fast_on_error(
    double: ModelDouble, tmp_path: Path, status: int, error_type: str
) -> None:
    double.set_default(Reply.error(status, error_type, "scripted failure"))
    started = time.monotonic()
    done, messages = run_cli(double, tmp_path, max_retries=0)
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    result = messages[-1]
    assert result["type"] == "result" and result["is_error"] is True
    assert str(status) in result["result"] and "scripted failure" in result["result"]
    assert result["api_error_status"] == status
    assert len(double.requests) == 1  # with CLAUDE_CODE_MAX_RETRIES=0


def sdk_options(double: ModelDouble, tmp_path: Path, **extra: Any) -> ClaudeAgentOptions:
    workspace = tmp_path / "ws"
    home = tmp_path / "home"
    workspace.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    return ClaudeAgentOptions(
        cwd=str(workspace), env=double.cli_env(home), include_partial_messages=True, **extra
    )


@needs_cli
@pytest.mark.asyncio
async def test_sdk_client_writes_a_file_through_a_tool(double: ModelDouble, tmp_path: Path) -> None:
    asked: list[str] = []

    async def allow(
        name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        asked.append(name)
        return PermissionResultAllow()

    double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/hello.txt", "content": "hi"}),
        Reply.text("done"),
    )
    options = sdk_options(double, tmp_path, can_use_tool=allow)
    async with ClaudeSDKClient(options) as client:
        await client.query("write hello.txt please")
        result = [m async for m in client.receive_response() if isinstance(m, ResultMessage)]
    assert (tmp_path / "ws" / "hello.txt").read_text() == "hi"
    assert asked == ["Write"]
    assert result[-1].result == "done" and not result[-1].is_error
    first, second = double.main_requests
    assert first.last_user_text == "write hello.txt please"
    (tool_result,) = second.last_tool_results
    assert not tool_result.get("is_error") and second.last_user_text == ""


@needs_cli
@pytest.mark.asyncio
async def test_sdk_client_streams_live_and_interrupt_drops_request(
    double: ModelDouble, tmp_path: Path
) -> None:
    double.script(
        Reply.text("one two three four", delay=0.25),
        Reply.hang(30),
        Reply.text("back again"),
    )
    async with ClaudeSDKClient(sdk_options(double, tmp_path)) as client:
        await client.query("stream")
        delta_times: list[float] = []
        async for message in client.receive_response():
            if isinstance(message, StreamEvent) and message.event["type"] == "content_block_delta":
                delta_times.append(time.monotonic())
        # Deltas reach the SDK as the double sends them (0.75 s apart end to end), not
        # all at the end; the margin absorbs a stalled first delta on a busy machine.
        spread = [round(t - delta_times[0], 2) for t in delta_times]
        assert len(spread) == 4 and spread[-1] >= 0.3, spread

        await client.query("hang")
        await asyncio.to_thread(double.wait_for_requests, 2)
        await client.interrupt()
        async for _ in client.receive_response():
            pass
        (aborted,) = await asyncio.to_thread(double.wait_for_aborted, 1, 10.0)
        assert aborted.last_user_text == "hang", double.requests

        await client.query("again")
        texts = [
            block.text
            for m in [m async for m in client.receive_response()]
            if isinstance(m, AssistantMessage)
            for block in m.content
            if hasattr(block, "text")
        ]
    assert texts == ["back again"], double.requests
