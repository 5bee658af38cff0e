"""Every error the facade can return: request problems and the gRPC status table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from ccapi_client.channel import MAX_MESSAGE_BYTES
from tests.facade import fake_core as fc
from tests.facade.conftest import AUTH, make_config, serve_app
from tests.facade.fake_core import FakeCore, free_port

URL = "/v1/chat/completions"
C = grpc.StatusCode


def body(model: str = "echo", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


def assert_error(
    r: httpx.Response, status: int, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    assert (err["type"], err["code"], err["param"]) == (type_, code, param), err
    return dict(err)


# (gRPC code, reason, param, retry) -> (HTTP status, type, code, param, Retry-After)
STATUS_CASES = [
    (C.INVALID_ARGUMENT, "", "messages", 0, 400, "invalid_request_error", None, "messages", None),
    (
        C.UNAUTHENTICATED,
        "invalid_api_key",
        "",
        0,
        401,
        "invalid_request_error",
        "invalid_api_key",
        None,
        None,
    ),
    (C.PERMISSION_DENIED, "", "", 0, 403, "invalid_request_error", "permission_denied", None, None),
    (
        C.NOT_FOUND,
        "model_not_found",
        "model",
        0,
        404,
        "invalid_request_error",
        "model_not_found",
        "model",
        None,
    ),
    (
        C.NOT_FOUND,
        "session_not_found",
        "",
        0,
        404,
        "invalid_request_error",
        "not_found",
        None,
        None,
    ),
    (
        C.RESOURCE_EXHAUSTED,
        "rate_limit_exceeded",
        "",
        12,
        429,
        "requests",
        "rate_limit_exceeded",
        None,
        "12",
    ),
    (
        C.RESOURCE_EXHAUSTED,
        "insufficient_quota",
        "",
        0,
        429,
        "insufficient_quota",
        "insufficient_quota",
        None,
        "1",
    ),
    (
        C.RESOURCE_EXHAUSTED,
        "model_rate_limited",
        "",
        3,
        429,
        "requests",
        "model_rate_limited",
        None,
        "3",
    ),
    (C.UNAVAILABLE, "model_overloaded", "", 5, 503, "server_error", "model_overloaded", None, "5"),
    (C.INTERNAL, "model_error", "", 0, 502, "server_error", "model_error", None, None),
    (
        C.UNAVAILABLE,
        "model_unavailable",
        "",
        0,
        502,
        "server_error",
        "model_unavailable",
        None,
        None,
    ),
    (C.ABORTED, "session_busy", "", 0, 409, "invalid_request_error", "conflict", None, None),
    (C.UNKNOWN, "model_error", "", 0, 502, "server_error", "model_error", None, None),
    (
        C.UNAUTHENTICATED,
        "upstream_authentication",
        "",
        0,
        502,
        "server_error",
        "upstream_authentication",
        None,
        None,
    ),
    (
        C.FAILED_PRECONDITION,
        "missing_credentials",
        "",
        0,
        503,
        "server_error",
        "missing_credentials",
        None,
        None,
    ),
    (C.DEADLINE_EXCEEDED, "", "", 0, 504, "server_error", "timeout", None, None),
    (C.INTERNAL, "", "", 0, 500, "server_error", "internal_error", None, None),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: f"{c[0].name}-{c[1] or 'none'}")
@pytest.mark.parametrize("when", ["before-start", "after-start"])
async def test_status_table(
    client: httpx.AsyncClient, fake: FakeCore, case: Any, when: str
) -> None:
    code, reason, param, retry, status, type_, ecode, eparam, retry_after = case
    model = f"err-{code.name}-{reason}-{when}"

    async def script(req: Any, ctx: Any) -> AsyncIterator[fc.Event]:
        if when == "after-start":
            yield fc.started()
        await fc.abort(ctx, code, f"core says {code.name}", reason, param, retry)

    fake.scripts[model] = script
    r = await client.post(URL, headers=AUTH, json=body(model))
    err = assert_error(r, status, type_, ecode, eparam)
    assert r.headers.get("retry-after") == retry_after
    if code == C.FAILED_PRECONDITION:
        assert "ANTHROPIC_API_KEY" in err["message"]
        assert "CLAUDE_CODE_OAUTH_TOKEN" in err["message"]
    if status >= 500 and ecode in ("internal_error",):
        assert "core says" not in err["message"]  # no raw internals to callers
    if when == "after-start":
        r = await client.post(URL, headers=AUTH, json=body(model, stream=True))
        assert r.status_code == 200
        lines = [ln for ln in r.text.split("\n") if ln]
        assert lines[-1] == "data: [DONE]"
        assert '"code":' in lines[-2] and lines[-2].startswith('data: {"error"')


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=body())
    assert_error(r, 401, "invalid_request_error", "invalid_api_key")
    r = await client.post(URL, headers={"Authorization": "Bearer nope"}, json=body())
    assert_error(r, 401, "invalid_request_error", "invalid_api_key")


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, headers=AUTH, json=body("no-such-model"))
    assert_error(r, 404, "invalid_request_error", "model_not_found", "model")


async def test_core_unreachable_is_503() -> None:
    s = await serve_app(make_config(f"127.0.0.1:{free_port()}"))
    try:
        async with s.client() as c:
            r = await c.post(URL, headers=AUTH, json=body())
            assert_error(r, 503, "server_error", "core_unavailable")
            assert r.headers["retry-after"]
            r = await c.get("/v1/models", headers=AUTH)
            assert_error(r, 503, "server_error", "core_unavailable")
            r = await c.get("/health/ready")
            assert r.status_code == 503
            r = await c.get("/health/live")
            assert r.status_code == 200
    finally:
        await s.stop()


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"[" * 100000])
async def test_malformed_json(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(URL, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    assert_error(r, 400, "invalid_request_error", None)


@pytest.mark.parametrize("raw", [b"", b"[]", b"3", b'"x"', b"null"])
async def test_body_not_an_object(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(URL, headers=AUTH, content=raw)
    assert_error(r, 400, "invalid_request_error", None)


UNSUPPORTED = [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"1": 5}}, "logit_bias"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"web_search_options": {"user_location": {"type": "approximate"}}}, "web_search_options"),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
                    ],
                }
            ]
        },
        "messages[0].content[0].type",
    ),
]


@pytest.mark.parametrize(("extra", "param"), UNSUPPORTED, ids=[p for _, p in UNSUPPORTED])
async def test_unsupported_parameters(
    client: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    r = await client.post(URL, headers=AUTH, json={**body(), **extra})
    assert_error(r, 400, "invalid_request_error", "unsupported_parameter", param)


# Client tools are supported; mistakes in them are 400s naming the param.
BAD_TOOLS = [
    (
        {"tools": [{"type": "function", "function": {"name": "not valid!"}}]},
        "tools[0].function.name",
    ),
    ({"function_call": {"name": "f"}}, "function_call"),
    (
        {
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        "tool_choice",
    ),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
]


@pytest.mark.parametrize(("extra", "param"), BAD_TOOLS, ids=[p for _, p in BAD_TOOLS])
async def test_bad_tool_parameters_are_named(
    client: httpx.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    r = await client.post(URL, headers=AUTH, json={**body(), **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


NEUTRAL = [
    {"tools": []},
    {"tool_choice": "none"},
    {"n": 1},
    {"logprobs": False},
    {"top_logprobs": 0},
    {"logit_bias": {}},
    {"response_format": {"type": "text"}},
    {"modalities": ["text"]},
    {"audio": None},
    {"parallel_tool_calls": False},
    {
        "temperature": 0.3,
        "top_p": 0.9,
        "presence_penalty": 1,
        "frequency_penalty": -1,
        "seed": 7,
        "service_tier": "auto",
        "store": False,
        "prompt_cache_key": "k",
        "safety_identifier": "x",
        "verbosity": "low",
    },
    {"stream_options": {"include_usage": False, "include_obfuscation": True}},
]


@pytest.mark.parametrize("extra", NEUTRAL, ids=lambda e: ",".join(e))
async def test_neutral_and_ignored_values_are_accepted(
    client: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    r = await client.post(URL, headers=AUTH, json={**body(), **extra})
    assert r.status_code == 200, r.text


SCHEMA = [
    ({"model": "echo"}, "messages", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
    ({**body(), "messages": []}, "messages", "invalid_value"),
    ({**body(), "max_tokens": 0}, "max_tokens", "invalid_value"),
    ({**body(), "max_tokens": 2**40}, "max_tokens", "invalid_value"),
    ({**body(), "temperature": 5}, "temperature", "invalid_value"),
    ({**body(), "stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
    ({**body(), "metadata": {str(i): "v" for i in range(17)}}, "metadata", "invalid_value"),
    ({**body(), "stream": "yes"}, "stream", "invalid_value"),
    ({**body(), "reasoning_effort": "max"}, "reasoning_effort", "invalid_value"),
    (
        {"model": "echo", "messages": [{"role": "user", "content": 5}]},
        "messages[0].content",
        "invalid_value",
    ),
    (
        {"model": "echo", "messages": [{"role": "wizard", "content": "x"}]},
        "messages[0]",
        "invalid_value",
    ),
    (
        {
            "model": "echo",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 3}}]}
            ],
        },
        "messages[0].content[0].image_url.url",
        "invalid_value",
    ),
    (
        {
            "model": "echo",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ],
        },
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    (
        {
            "model": "echo",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
                    ],
                }
            ],
        },
        "messages[0].content[0].image_url.url",
        "invalid_image_format",
    ),
    (
        {
            "model": "echo",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
                }
            ],
        },
        "messages[0].content[0].image_url.url",
        "invalid_image_url",
    ),
    ({**body(), "frobnicate": 1}, "frobnicate", "unknown_parameter"),
    (
        {"model": "echo", "messages": [{"role": "user", "content": "x", "mood": "ok"}]},
        "messages[0].mood",
        "unknown_parameter",
    ),
]


@pytest.mark.parametrize(("payload", "param", "code"), SCHEMA, ids=[s[1] for s in SCHEMA])
async def test_schema_violations_name_the_param(
    client: httpx.AsyncClient, payload: dict[str, Any], param: str, code: str
) -> None:
    r = await client.post(URL, headers=AUTH, json=payload)
    assert_error(r, 400, "invalid_request_error", code, param)


async def test_body_limit(client: httpx.AsyncClient, fake: FakeCore) -> None:
    big = "x" * (300 * 1024)
    r = await client.post(URL, headers=AUTH, json=body(text=big))
    assert_error(r, 413, "invalid_request_error", "request_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 8192
        yield b'"}]}'

    r = await client.post(URL, headers=AUTH, content=chunks())
    assert_error(r, 413, "invalid_request_error", "request_too_large")


async def test_unknown_url_and_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nope")
    assert_error(r, 404, "invalid_request_error", "unknown_url")
    r = await client.get(URL)
    assert_error(r, 405, "invalid_request_error", "method_not_allowed")
    assert "POST" in r.headers["allow"]


# A lone surrogate is valid JSON but no Unicode text: once a 500, now a 400
# naming the field (and a valid pair still passes).
@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        (URL, body(messages=[{"role": "user", "content": "x\ud800y"}]), "messages[0].content"),
        ("/v1/responses", {"model": "echo", "input": "x\ud800y"}, "input"),
        (
            "/v1/responses",
            {
                "model": "echo",
                "input": [{"role": "user", "content": "a"}],
                "instructions": "\udc00",
            },
            "instructions",
        ),
    ],
)
async def test_lone_surrogate_is_400(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], param: str
) -> None:
    # json.dumps escapes the surrogate as \ud800, as a client's JSON encoder would.
    raw = json.dumps(payload)
    assert "\\ud800" in raw or "\\udc00" in raw
    r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    err = assert_error(r, 400, "invalid_request_error", None, param)
    assert "surrogate" in err["message"]


async def test_surrogate_pair_still_passes(client: httpx.AsyncClient) -> None:
    raw = json.dumps(body(messages=[{"role": "user", "content": "smile \U0001f600"}]))
    assert "\\ud83d\\ude00" in raw
    r = await client.post(URL, headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    assert r.status_code == 200, r.text


async def test_request_over_the_grpc_cap_is_413_before_the_call(fake: FakeCore) -> None:
    # A body limit raised (live config) above what gRPC carries: refused by the
    # facade as too large, never sent to be refused by gRPC as a "rate limit".
    s = await serve_app(make_config(fake.addr, max_body_bytes=MAX_MESSAGE_BYTES + 2_000_000))
    try:
        content = "A" * (MAX_MESSAGE_BYTES + 1_000_000)
        async with s.client() as c:
            r = await c.post(
                URL, headers=AUTH, json=body(messages=[{"role": "user", "content": content}])
            )
        err = assert_error(r, 413, "invalid_request_error", "request_too_large")
        assert "bytes" in err["message"]
    finally:
        await s.stop()
