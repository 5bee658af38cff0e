"""Chat completions wire format, streaming and not, against the fake core."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from claudecode.v1 import content_pb2, events_pb2
from http_facade import file_summary
from http_facade.chat import protocol
from tests.facade import fake_core as fc
from tests.facade.conftest import AUTH, Served, make_config, serve_app
from tests.facade.fake_core import GOOD_KEY, FakeCore
from tests.facade.sse import events

URL = "/v1/chat/completions"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def body(model: str = "echo", text: str = "hello there", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


async def agentic(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
    yield fc.started(turn_id="agent1")
    yield fc.thinking("Let me think. ")
    yield fc.tool_use("tu1", "Write", "Write fib.py")
    yield fc.Event(
        file_change=events_pb2.FileChange(
            kind=events_pb2.FILE_CHANGE_KIND_CREATED, path="fib.py", size_bytes=42, diff="+x"
        )
    )
    yield fc.tool_result("tu1")
    yield fc.tool_use("tu2", "Bash", "Bash: pytest -q")
    yield fc.tool_result("tu2", is_error=True, excerpt="1 failed\nmore")
    yield fc.text("Done: ")
    yield fc.text("fib.py")
    yield fc.Event(usage=fc.USAGE)
    yield fc.completed("Done: fib.py", finish=events_pb2.FINISH_REASON_LENGTH)


@pytest.fixture(scope="module", autouse=True)
def scripts(fake: FakeCore) -> None:
    fake.scripts["agentic"] = agentic


async def test_non_streaming_wire_format(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json=body(text="hello there world"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-session-id"] == "s1"
    data = r.json()
    ChatCompletion.model_validate(data)
    protocol.ChatCompletion.model_validate(data)
    assert data["id"] == "chatcmpl-t1"
    assert data["object"] == "chat.completion"
    assert data["model"] == "claude-sonnet-4-5"
    choice = data["choices"][0]
    assert choice == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "hello there world",
            "refusal": None,
            "reasoning_content": None,
            "reasoning": None,
        },
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert data["usage"] == {
        "prompt_tokens": 18,
        "completion_tokens": 7,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert data["claude_code"] == {
        "session_id": "s1",
        "turn_id": "t1",
        "files": [],
        "cost_usd": 0.0123,
        "num_turns": 2,
    }


async def test_reasoning_and_activity_stay_out_of_content(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json=body("agentic"))
    data = r.json()
    msg = data["choices"][0]["message"]
    # The file summary follows the answer (on by default), after its marker.
    assert msg["content"].startswith("Done: fib.py\n\n" + file_summary.MARKER)
    assert "`fib.py` (created, 42 bytes)" in msg["content"]
    assert file_summary.remove(msg["content"]) == "Done: fib.py"
    assert msg["reasoning_content"] == (
        "Let me think. \n▸ Write fib.py\n✓ Write fib.py\n\n▸ Bash: pytest -q\n"
        "✗ Bash: pytest -q: 1 failed more\n"
    )
    assert msg["reasoning"] == msg["reasoning_content"]
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["id"] == "chatcmpl-agent1"
    assert data["claude_code"]["files"] == [
        {
            "path": "fib.py",
            "kind": "created",
            "size_bytes": 42,
            "binary": False,
            "diff": "+x",
            "diff_truncated": False,
        }
    ]


async def test_streaming_wire_format(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json=body("agentic", stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-session-id"] == "s1"
    assert r.headers["x-request-id"]
    datas, comments = events(r.text)
    assert comments == []
    assert datas[-1] == "[DONE]"
    chunks = datas[:-1]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
        protocol.ChatCompletionChunk.model_validate(c)
        assert "usage" not in c
    assert {c["id"] for c in chunks} == {"chatcmpl-agent1"}
    roles = [c["choices"][0]["delta"].get("role") for c in chunks]
    assert roles[0] == "assistant" and roles[1:] == [None] * (len(chunks) - 1)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks)
    reasoning2 = "".join(c["choices"][0]["delta"].get("reasoning") or "" for c in chunks)
    assert file_summary.remove(content) == "Done: fib.py"
    # The summary is the last content delta, before the finish chunk.
    assert chunks[-2]["choices"][0]["delta"]["content"].lstrip().startswith(file_summary.MARKER)
    assert "▸ Write fib.py" in reasoning and reasoning == reasoning2
    finals = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finals[-1] == "length" and set(finals[:-1]) == {None}
    assert chunks[-1]["claude_code"]["turn_id"] == "agent1"
    assert chunks[-1]["claude_code"]["files"][0]["path"] == "fib.py"


async def test_stream_include_usage(client: httpx.AsyncClient) -> None:
    r = await client.post(
        URL, headers=AUTH, json=body(stream=True, stream_options={"include_usage": True})
    )
    datas, _ = events(r.text)
    assert datas[-1] == "[DONE]"
    usage_chunk = datas[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] == 25
    assert all(c["usage"] is None for c in datas[:-2])
    assert datas[-3]["choices"][0]["finish_reason"] == "stop"


async def test_openai_sdk_both_modes(served: Served) -> None:
    client = openai.AsyncOpenAI(base_url=served.base_url + "/v1", api_key=GOOD_KEY, max_retries=0)
    done = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two"}]
    )
    assert done.choices[0].message.content == "one two"
    assert done.usage is not None and done.usage.completion_tokens == 7
    stream = await client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "three four"
    assert usage is not None and usage.prompt_tokens == 18
    await client.close()


async def test_request_translation(client: httpx.AsyncClient, fake: FakeCore) -> None:
    fake.requests.clear()
    payload = {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use Python."}]},
            {"role": "user", "content": "first", "name": "ann"},
            {"role": "assistant", "content": "earlier answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a.jpg", "detail": "low"},
                    },
                ],
            },
        ],
        "max_completion_tokens": 123,
        "stop": "END",
        "user": "u-1",
        "metadata": {"k": "v"},
        "reasoning_effort": "minimal",
        "temperature": 0.2,
        "session_id": "sess-9",
    }
    r = await client.post(URL, headers={**AUTH, "X-Request-Id": "my-req-1"}, json=payload)
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "my-req-1"
    req, md = fake.requests[-1]
    assert md["authorization"] == f"Bearer {GOOD_KEY}"
    assert md["x-request-id"] == "my-req-1"
    assert [m.role for m in req.messages] == [
        content_pb2.ROLE_SYSTEM,
        content_pb2.ROLE_DEVELOPER,
        content_pb2.ROLE_USER,
        content_pb2.ROLE_ASSISTANT,
        content_pb2.ROLE_USER,
    ]
    assert req.messages[2].name == "ann"
    parts = req.messages[4].content
    assert parts[0].text == "look"
    assert parts[1].image.media_type == "image/png"
    assert parts[1].image.data == base64.b64decode(PNG)
    assert parts[2].image.url == "https://example.com/a.jpg"
    assert req.options.max_output_tokens == 123
    assert list(req.options.stop) == ["END"]
    assert req.options.user == "u-1"
    assert req.options.reasoning_effort == "low"
    assert dict(req.metadata) == {"k": "v"}
    assert req.origin.endpoint == "/v1/chat/completions"
    assert req.origin.request_id == "my-req-1"
    assert req.session_id == "sess-9"


async def test_session_id_header(client: httpx.AsyncClient, fake: FakeCore) -> None:
    r = await client.post(URL, headers={**AUTH, "X-Session-Id": "hdr"}, json=body())
    assert r.status_code == 200
    assert fake.requests[-1][0].session_id == "hdr"
    r = await client.post(URL, headers={**AUTH, "X-Session-Id": "a"}, json=body(session_id="b"))
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "session_id"


async def test_keepalive_pings(fake: FakeCore) -> None:
    async def slow(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
        yield fc.started()
        await asyncio.sleep(0.7)
        yield fc.text("late")
        yield fc.completed("late")

    fake.scripts["slow-ping"] = slow
    s = await serve_app(make_config(fake.addr, keepalive_seconds=0.2))
    try:
        async with s.client() as c:
            r = await c.post(URL, headers=AUTH, json=body("slow-ping", stream=True))
            datas, comments = events(r.text)
            assert len(comments) >= 2 and set(comments) == {": ping"}
            assert datas[-1] == "[DONE]"
            # Non-streaming requests just wait.
            r = await c.post(URL, headers=AUTH, json=body("slow-ping"))
            assert r.json()["choices"][0]["message"]["content"] == "late"
    finally:
        await s.stop()


async def _wait_for(cond: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("stream", [True, False])
async def test_client_disconnect_cancels_the_turn(
    served: Served, fake: FakeCore, stream: bool
) -> None:
    model = f"hang-{stream}"
    reached = asyncio.Event()

    async def hang(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
        yield fc.started()
        yield fc.text("partial")
        reached.set()
        await asyncio.sleep(60)
        yield fc.completed("never")

    fake.scripts[model] = hang
    async with served.client() as c:
        if stream:
            async with c.stream("POST", URL, headers=AUTH, json=body(model, stream=True)) as r:
                async for line in r.aiter_lines():
                    if "partial" in line:
                        break
        else:
            task = asyncio.ensure_future(c.post(URL, headers=AUTH, json=body(model)))
            await asyncio.wait_for(reached.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    await _wait_for(lambda: model in fake.cancelled, timeout=2.0)
    assert model not in fake.finished


async def test_turn_failed_mid_stream(client: httpx.AsyncClient, fake: FakeCore) -> None:
    async def fails(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
        yield fc.started()
        yield fc.text("some ")
        yield fc.failed(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "Model rate limited", "model_rate_limited", 7
        )
        await fc.abort(
            ctx,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Model rate limited",
            "model_rate_limited",
            retry=7,
        )

    fake.scripts["fails"] = fails
    r = await client.post(URL, headers=AUTH, json=body("fails", stream=True))
    assert r.status_code == 200
    datas, _ = events(r.text)
    assert datas[-1] == "[DONE]"
    assert datas[-2] == {
        "error": {
            "message": "Model rate limited",
            "type": "requests",
            "param": None,
            "code": "model_rate_limited",
        }
    }
    assert datas[1]["choices"][0]["delta"] == {"content": "some "}
    # Non-streaming: the same failure is an HTTP error with Retry-After.
    r = await client.post(URL, headers=AUTH, json=body("fails"))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "model_rate_limited"


async def test_rpc_error_mid_stream_without_turn_failed(
    client: httpx.AsyncClient, fake: FakeCore
) -> None:
    async def dies(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
        yield fc.started()
        yield fc.text("x")
        await fc.abort(ctx, grpc.StatusCode.INTERNAL, "boom", "model_error")

    fake.scripts["dies"] = dies
    r = await client.post(URL, headers=AUTH, json=body("dies", stream=True))
    datas, _ = events(r.text)
    assert datas[-1] == "[DONE]"
    assert datas[-2]["error"]["code"] == "model_error"
    assert datas[-2]["error"]["type"] == "server_error"
    sdk = openai.AsyncOpenAI(base_url=str(client.base_url) + "/v1", api_key=GOOD_KEY, max_retries=0)
    stream = await sdk.chat.completions.create(
        model="dies", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="boom"):
        async for _ in stream:
            pass
    await sdk.close()


async def test_eight_concurrent_streams(served: Served) -> None:
    async def one(i: int) -> str:
        async with served.client() as c:
            r = await c.post(URL, headers=AUTH, json=body(text=f"stream number {i}", stream=True))
            datas, _ = events(r.text)
            return "".join(
                d["choices"][0]["delta"].get("content") or "" for d in datas[:-1] if d["choices"]
            )

    texts = await asyncio.gather(*(one(i) for i in range(8)))
    assert texts == [f"stream number {i}" for i in range(8)]


# --- file summary --------------------------------------------------------------------------


async def test_resent_answer_loses_the_file_summary(
    client: httpx.AsyncClient, fake: FakeCore
) -> None:
    first = (await client.post(URL, headers=AUTH, json=body("agentic"))).json()
    answer = first["choices"][0]["message"]["content"]
    assert file_summary.MARKER in answer
    history = [
        {"role": "user", "content": "write fib"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "thanks"},
    ]
    r = await client.post(URL, headers=AUTH, json={"model": "echo", "messages": history})
    assert r.status_code == 200
    sent = fake.requests[-1][0]
    assert sent.messages[1].content[0].text == "Done: fib.py"
    # The same as a list of parts.
    history[1] = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    await client.post(URL, headers=AUTH, json={"model": "echo", "messages": history})
    assert fake.requests[-1][0].messages[1].content[0].text == "Done: fib.py"
    # User messages are never touched.
    history[0] = {"role": "user", "content": "quote: " + answer}
    await client.post(URL, headers=AUTH, json={"model": "echo", "messages": history})
    assert file_summary.MARKER in fake.requests[-1][0].messages[0].content[0].text


async def test_file_summary_can_be_turned_off(fake: FakeCore) -> None:
    from http_facade.config import FacadeConfig

    assert FacadeConfig.from_env({"CCAPI_FILE_SUMMARY": "0"}).file_summary is False
    assert FacadeConfig.from_env({}).file_summary is True
    served = await serve_app(make_config(fake.addr, file_summary=False))
    try:
        async with served.client() as c:
            r = await c.post(URL, headers=AUTH, json=body("agentic"))
            assert r.json()["choices"][0]["message"]["content"] == "Done: fib.py"
            r = await c.post(URL, headers=AUTH, json=body("agentic", stream=True))
            datas, _ = events(r.text)
            text = "".join(
                d["choices"][0]["delta"].get("content") or ""
                for d in datas[:-1]
                if d.get("choices")
            )
            assert text == "Done: fib.py"
    finally:
        await served.stop()


def test_summary_rendering() -> None:
    files = [
        {
            "path": "new.py",
            "kind": "created",
            "size_bytes": 30,
            "binary": False,
            "diff": "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+x = '```'\n+print(x)",
            "diff_truncated": False,
        },
        {
            "path": "app.py",
            "kind": "modified",
            "size_bytes": 12,
            "binary": False,
            "diff": "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-v1\n+v2",
            "diff_truncated": True,
        },
        {
            "path": "logo.png",
            "kind": "created",
            "size_bytes": 2048,
            "binary": True,
            "diff": None,
            "diff_truncated": False,
        },
        {
            "path": "gone.txt",
            "kind": "deleted",
            "size_bytes": 0,
            "binary": False,
            "diff": "-old",
            "diff_truncated": False,
        },
    ]
    text = file_summary.render(files)
    assert text.startswith("\n\n" + file_summary.MARKER)
    assert "**Files changed (4)**" in text
    assert "````python\nx = '```'\nprint(x)\n````" in text  # fence longer than the content's
    assert "```diff\n@@ -1 +1 @@\n-v1\n+v2\n```" in text and "*(cut;" in text
    assert "- `logo.png` (created, 2.0 KB, binary)" in text
    assert "- `gone.txt` (deleted)" in text
    assert file_summary.render([]) == ""
    assert file_summary.remove("answer" + text) == "answer"
    assert file_summary.remove("no summary here") == "no summary here"


async def test_our_reasoning_fields_resent_in_history_are_accepted(
    client: httpx.AsyncClient, fake: FakeCore
) -> None:
    # Clients that resend our assistant message whole send its thinking back too.
    fake.requests.clear()
    r = await client.post(
        URL,
        headers=AUTH,
        json={
            "model": "echo",
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "Hello!",
                    "reasoning_content": "greet them",
                    "reasoning": "greet them",
                },
                {"role": "user", "content": "and again"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    sent = fake.requests[-1][0].messages
    assert [m.content[0].text for m in sent] == ["hi", "Hello!", "and again"]
