"""One turn, timed three ways: the core's gRPC stream, the HTTP facade's SSE
stream, and a bare `claude -p` process. Clocks start just before the request
goes out (or the process is spawned)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc
import httpx

from claudecode.v1 import agent_pb2, agent_pb2_grpc, content_pb2
from tests.bench.stack import CLAUDE_CLI, BenchError

TURN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Timing:
    """Seconds from the request to the first answer text, and to the turn's end."""

    first_text_s: float
    full_turn_s: float


@dataclass(frozen=True)
class Turn:
    timing: Timing
    session_id: str
    text: str = ""  # the answer, where the measure collects it


def grpc_turn(
    channel: grpc.Channel,
    metadata: tuple[tuple[str, str], ...],
    text: str,
    session_id: str = "",
) -> Turn:
    """RunTurn; first text = first TextDelta, full turn = TurnCompleted."""
    request = agent_pb2.RunTurnRequest(
        model="sonnet",
        session_id=session_id,
        messages=[
            content_pb2.Message(
                role=content_pb2.ROLE_USER, content=[content_pb2.ContentPart(text=text)]
            )
        ],
    )
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    first = 0.0
    sid = ""
    start = time.perf_counter()
    for event in stub.RunTurn(request, metadata=metadata, timeout=TURN_TIMEOUT_S):
        kind = event.WhichOneof("event")
        if kind == "started":
            sid = event.started.session_id
        elif kind == "text_delta" and event.text_delta.text and not first:
            first = time.perf_counter() - start
        elif kind == "completed":
            full = time.perf_counter() - start
            if not first:
                raise BenchError("gRPC turn completed without text")
            return Turn(Timing(first, full), sid)
        elif kind == "failed":
            raise BenchError(f"gRPC turn failed: {event.failed}")
    raise BenchError("gRPC stream ended without TurnCompleted")


def http_turn(
    client: httpx.Client, base_url: str, api_key: str, text: str, session_id: str = ""
) -> Turn:
    """Streaming chat completion; first text = first chunk with delta content,
    full turn = `data: [DONE]`."""
    body = {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": text}]}
    return _stream_chat(client, base_url, api_key, body, session_id)


# The client tool the tool-results scenario offers; the model double calls it.
BENCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bench_lookup",
        "description": "Looks something up for the benchmark.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


TOOL_RESULT = "the looked-up value"


def http_tool_call(
    client: httpx.Client, base_url: str, api_key: str, text: str, session_id: str
) -> list[dict[str, Any]]:
    """A follow-up that offers `BENCH_TOOL` and ends with the model calling it
    (not streamed, untimed). Returns the messages so far: the user message and
    the assistant message with its tool calls."""
    user = {"role": "user", "content": text}
    body = {"model": "sonnet", "messages": [user], "tools": [BENCH_TOOL]}
    response = client.post(
        f"{base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}", "X-Session-Id": session_id},
    )
    if response.status_code != 200:
        raise BenchError(f"HTTP {response.status_code}: {response.text[:500]}")
    choice = response.json()["choices"][0]
    if choice.get("finish_reason") != "tool_calls" or not choice["message"].get("tool_calls"):
        raise BenchError(f"the model did not call the tool: {choice}")
    message = choice["message"]
    # As an SDK resends it: without our extension fields (reasoning_content).
    assistant = {
        "role": "assistant",
        "content": message.get("content"),
        "tool_calls": message["tool_calls"],
    }
    return [user, assistant]


def http_tool_results_turn(
    client: httpx.Client, base_url: str, api_key: str, messages: list[dict[str, Any]]
) -> Turn:
    """The streaming request that carries a result for every call of the last
    assistant message: the turn that waited for them continues."""
    calls = messages[-1]["tool_calls"]
    results = [
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT} for call in calls
    ]
    body = {
        "model": "sonnet",
        "stream": True,
        "messages": [*messages, *results],
        "tools": [BENCH_TOOL],
    }
    return _stream_chat(client, base_url, api_key, body, "")


def _stream_chat(
    client: httpx.Client, base_url: str, api_key: str, body: dict[str, Any], session_id: str
) -> Turn:
    headers = {"Authorization": f"Bearer {api_key}"}
    if session_id:
        headers["X-Session-Id"] = session_id
    first = 0.0
    pieces: list[str] = []
    start = time.perf_counter()
    with client.stream(
        "POST", f"{base_url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            response.read()
            raise BenchError(f"HTTP {response.status_code}: {response.text[:500]}")
        sid = response.headers.get("x-session-id", "")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                full = time.perf_counter() - start
                if not first:
                    raise BenchError("HTTP stream finished without text")
                if not sid:
                    raise BenchError("HTTP response has no X-Session-Id")
                return Turn(Timing(first, full), sid, "".join(pieces))
            chunk = json.loads(data)
            if "error" in chunk:
                raise BenchError(f"HTTP stream error: {chunk['error']}")
            choices = chunk.get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            if content:
                first = first or time.perf_counter() - start
                pieces.append(content)
    raise BenchError("HTTP stream ended without [DONE]")


def bare_cli_turn(env: dict[str, str], cwd: Path, text: str, session_id: str = "") -> Turn:
    """`claude -p TEXT --output-format stream-json --verbose --include-partial-messages`
    (plus `--resume ID` for a follow-up): first text = first text_delta stream
    event, full turn = the `result` line. The process exit is waited for, untimed."""
    argv = [
        str(CLAUDE_CLI),
        "-p",
        text,
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    if session_id:
        argv += ["--resume", session_id]
    with tempfile.TemporaryFile() as stderr:
        return _run_bare(argv, env, cwd, stderr)


def _run_bare(argv: list[str], env: dict[str, str], cwd: Path, stderr: IO[bytes]) -> Turn:
    first = 0.0
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "stream_event" and not first:
                event = message.get("event") or {}
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    first = time.perf_counter() - start
            elif kind == "result":
                full = time.perf_counter() - start
                if message.get("subtype") != "success" or message.get("is_error"):
                    raise BenchError(f"claude -p failed: {raw[:500]!r}")
                if not first:
                    raise BenchError("claude -p finished without text")
                return Turn(Timing(first, full), str(message.get("session_id", "")))
        process.wait(30)
        stderr.seek(0)
        tail = stderr.read()[-1000:].decode(errors="replace")
        raise BenchError(f"claude -p exited {process.returncode} without a result line: {tail}")
    finally:
        try:
            process.communicate(timeout=30)  # drains stdout; the exit is not timed
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
