"""Live: gunicorn facade + real `ccapi core` + real Claude Code CLI + model double."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from http_facade import file_summary
from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import (
    CoreProcess,
    ModelDouble,
    RecordedRequest,
    Reply,
    claude_processes_in,
    start_core,
)
from tests.facade.sse import events

MODEL = "sonnet"
HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1] / ".tools" / "facade-node"


def chat(facade: Facade, core: CoreProcess, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        facade.base_url + "/v1/chat/completions",
        json=payload,
        timeout=90,
        headers={"Authorization": f"Bearer {core.api_key}"},
    )


def test_non_streaming(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(Reply.text("Hello from the double."))
    done = sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Say hello"},
        ],
    )
    assert done.object == "chat.completion"
    assert done.id.startswith("chatcmpl-")
    assert done.choices[0].message.content == "Hello from the double."
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    extra = done.model_extra or {}
    assert extra["claude_code"]["session_id"]
    assert model_double.main_requests[-1].last_user_text.strip().endswith("Say hello")


def test_streaming_with_usage(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(Reply.text("one two three four five six", chunks=6, delay=0.05))
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_reasoning(
    sdk: openai.OpenAI, model_double: ModelDouble, facade: Facade, core: CoreProcess
) -> None:
    model_double.script(Reply.thinking("Primes are odd except 2.", "2, 3, 5"))
    done = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "p"}])
    msg = done.choices[0].message.model_extra or {}
    assert done.choices[0].message.content == "2, 3, 5"
    assert "Primes are odd except 2." in msg["reasoning_content"]
    model_double.script(Reply.thinking("Think again.", "7"))
    r = chat(facade, core, stream=True)
    datas, _ = events(r.text)
    deltas = [d["choices"][0]["delta"] for d in datas[:-1] if d.get("choices")]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Think again."
    assert "".join(d.get("reasoning", "") for d in deltas) == "Think again."
    assert "".join(d.get("content") or "" for d in deltas) == "7"


def test_tool_activity_is_reasoning_not_content(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/fib.py", "content": "print(1)\n"}),
        Reply.text("Wrote fib.py."),
    )
    done = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "write fib"}]
    )
    msg = done.choices[0].message
    assert file_summary.remove(msg.content or "") == "Wrote fib.py."
    reasoning = (msg.model_extra or {})["reasoning_content"]
    assert "▸" in reasoning and "fib.py" in reasoning and "✓" in reasoning
    files = (done.model_extra or {})["claude_code"]["files"]
    assert [f["path"] for f in files] == ["fib.py"]


def test_eight_concurrent_streams(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    def echo(r: RecordedRequest) -> Reply:
        return Reply.text(f"echo: {r.last_user_text.strip().split()[-1]}", delay=0.02)

    model_double.set_default(Reply.dynamic(echo))

    def one(i: int) -> str:
        client = openai.OpenAI(
            base_url=facade.base_url + "/v1", api_key=core.api_key, max_retries=0, timeout=120
        )
        with client:
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"token-{i}"}], stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(8)))
    assert got == [f"echo: token-{i}" for i in range(8)]


def test_disconnect_mid_stream_cancels_the_turn(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.hang(60))
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST",
            facade.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {core.api_key}"},
            json={
                "model": MODEL,
                "stream": True,
                "messages": [{"role": "user", "content": "take your time"}],
            },
        ) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()  # held: a dropped generator would close the connection
        for line in lines:
            if line.startswith("data:"):
                break  # the role chunk: the turn has started
        model_double.wait_for_requests(1, timeout=30)
        workspace = Path(model_double.main_requests[0].working_directory or "")
        assert claude_processes_in(workspace)
        closed_at = time.monotonic()
    model_double.wait_for_aborted(1, timeout=10)
    aborted_after = time.monotonic() - closed_at
    deadline = time.monotonic() + 10
    while claude_processes_in(workspace) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert claude_processes_in(workspace) == []
    assert aborted_after < 2.5, f"the model call was aborted only after {aborted_after:.1f}s"


# --- errors ------------------------------------------------------------------------------


def _err(r: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code, err
    return dict(err)


def test_bad_key_and_unknown_model(facade: Facade, core: CoreProcess) -> None:
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        timeout=30,
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
    )
    _err(r, 401, "invalid_api_key")
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        timeout=30,
        headers={"Authorization": "Bearer sk-wrong"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
    )
    _err(r, 401, "invalid_api_key")
    _err(chat(facade, core, model="gpt-7-turbo"), 404, "model_not_found")
    sdk = openai.OpenAI(base_url=facade.base_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_request_errors(facade: Facade, core: CoreProcess) -> None:
    _err(
        chat(facade, core, n=2),
        400,
        "unsupported_parameter",
    )
    err = _err(chat(facade, core, messages=[{"role": "user", "content": 3}]), 400, "invalid_value")
    assert err["param"] == "messages[0].content"
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        content=b"{nope",
        headers={"Authorization": f"Bearer {core.api_key}"},
        timeout=30,
    )
    _err(r, 400, None)
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        content=b"x" * (11 * 1024 * 1024),
        headers={"Authorization": f"Bearer {core.api_key}"},
        timeout=30,
    )
    _err(r, 413, "request_too_large")


def test_large_image_within_the_body_limit_reaches_the_model(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    # 6.7 MB of JSON, 5 MB of image once decoded: within the 10 MB body limit, and
    # so within what the core accepts (once a 429 "Received message larger than max").
    model_double.script(Reply.text("A large picture."))
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5 * 1024 * 1024 - 1024)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": url}}]
    r = chat(facade, core, messages=[{"role": "user", "content": content}])
    assert r.status_code == 200, r.text[:500]
    assert r.json()["choices"][0]["message"]["content"] == "A large picture."


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (
            Reply.error(429, "rate_limit_error", "slow down", retry_after=3),
            429,
            "model_rate_limited",
        ),
        (Reply.error(529, "overloaded_error", "Overloaded"), 503, "model_overloaded"),
        (
            Reply.error(401, "authentication_error", "invalid x-api-key"),
            502,
            "upstream_authentication",
        ),
        (Reply.error(500, "api_error", "Internal server error"), 502, None),
    ],
    ids=["429", "529", "401", "500"],
)
def test_model_side_failures(
    facade: Facade,
    core: CoreProcess,
    model_double: ModelDouble,
    reply: Reply,
    status: int,
    code: str | None,
) -> None:
    model_double.set_default(reply)
    r = chat(facade, core)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    if status == 429:
        assert int(r.headers["retry-after"]) >= 1
    # The same failure mid-stream: an error line, then [DONE].
    r = chat(facade, core, stream=True)
    assert r.status_code == 200
    datas, _ = events(r.text)
    assert datas[-1] == "[DONE]"
    assert "error" in datas[-2], datas


def test_missing_credentials(
    model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bare = start_core(model_double.url, ANTHROPIC_API_KEY="")
    facade = start_facade(bare.addr, tmp_path_factory.mktemp("bare") / "gunicorn.log", 1)
    try:
        r = httpx.post(
            facade.base_url + "/v1/chat/completions",
            timeout=30,
            headers={"Authorization": f"Bearer {bare.api_key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        err = _err(r, 503, "missing_credentials")
        assert "ANTHROPIC_API_KEY" in err["message"]
        assert "CLAUDE_CODE_OAUTH_TOKEN" in err["message"]
    finally:
        facade.stop()
        bare.cleanup()


def test_core_unreachable_and_probes(
    facade: Facade, core: CoreProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    r = httpx.get(facade.base_url + "/health/ready", timeout=10)
    assert r.status_code == 200
    from tests.facade.fake_core import free_port

    orphan = start_facade(
        f"127.0.0.1:{free_port()}", tmp_path_factory.mktemp("orphan") / "gunicorn.log", 1
    )
    try:
        assert httpx.get(orphan.base_url + "/health/live", timeout=10).status_code == 200
        assert httpx.get(orphan.base_url + "/health/ready", timeout=10).status_code == 503
        r = httpx.post(
            orphan.base_url + "/v1/chat/completions",
            timeout=30,
            headers={"Authorization": f"Bearer {core.api_key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        )
        _err(r, 503, "core_unavailable")
    finally:
        orphan.stop()


def test_models(sdk: openai.OpenAI) -> None:
    ids = [m.id for m in sdk.models.list().data]
    assert "claude-sonnet-5-5" in ids and "sonnet" in ids
    assert sdk.models.retrieve("sonnet").object == "model"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-7-turbo")


# --- the openai npm package ------------------------------------------------------------

NODE_SCRIPT = r"""
const OpenAI = require('openai');
(async () => {
  const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY,
                              maxRetries: 0 });
  const done = await client.chat.completions.create({
    model: 'sonnet', messages: [{ role: 'user', content: 'node one' }] });
  const stream = await client.chat.completions.create({
    model: 'sonnet', messages: [{ role: 'user', content: 'node two' }], stream: true,
    stream_options: { include_usage: true } });
  let text = ''; let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length) text += chunk.choices[0].delta.content || '';
    if (chunk.usage) usage = chunk.usage;
  }
  const models = await client.models.list();
  let status = 0;
  try { await client.chat.completions.create({ model: 'gpt-7-turbo',
        messages: [{ role: 'user', content: 'x' }] }); }
  catch (e) { status = e.status; }
  console.log(JSON.stringify({ nonstream: done.choices[0].message.content, stream: text,
    usage: usage && usage.total_tokens, models: models.data.map(m => m.id), status }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def _npm_openai() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the openai npm smoke test needs them")
    if not (TOOLS / "node_modules" / "openai").is_dir():
        TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(TOOLS),
                "openai@4",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install openai failed (registry unreachable?): {done.stderr[-500:]}")
    return TOOLS


def test_openai_npm_package(facade: Facade, core: CoreProcess, model_double: ModelDouble) -> None:
    tools = _npm_openai()
    model_double.set_default(
        Reply.dynamic(lambda r: Reply.text("node says " + r.last_user_text.strip().split()[-1]))
    )
    script = tools / "smoke.js"
    script.write_text(NODE_SCRIPT)
    done = subprocess.run(
        ["node", str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **os.environ,
            "BASE_URL": facade.base_url + "/v1",
            "API_KEY": core.api_key,
            "NODE_PATH": str(tools / "node_modules"),
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["nonstream"] == "node says one"
    assert out["stream"] == "node says two"
    assert out["usage"] > 0
    assert "sonnet" in out["models"]
    assert out["status"] == 404
