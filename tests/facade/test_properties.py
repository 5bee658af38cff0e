"""Property-based: no request body, however odd, makes the facade answer 5xx.

Hypothesis drives a sync httpx client from a worker thread while the event loop
keeps serving the in-process app and the fake core.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from http_facade.chat.protocol import ChatCompletionRequest
from http_facade.responses.protocol import ResponseCreateRequest
from tests.facade.conftest import AUTH, Served

URL = "/v1/chat/completions"

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
image_urls = st.one_of(
    st.just("data:image/png;base64,iVBORw0KGgo="),
    st.builds(
        lambda t, d: f"data:{t};base64,{d}",
        st.sampled_from(["image/png", "image/jpeg", "text/plain", "image/x"]),
        st.text(max_size=12),
    ),
    st.just("https://example.com/a.png"),
    st.text(max_size=30),
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20) | json_values}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries({"url": image_urls}) | json_values,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["refusal", "input_audio", "file", "x"])},
        optional={"refusal": json_values},
    ),
    json_values,
)
messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(
            ["user", "system", "developer", "assistant", "tool", "function", "x"]
        )
        | json_values
    },
    optional={
        "content": st.text(max_size=40) | st.lists(parts, max_size=3) | json_values,
        "name": st.text(max_size=10) | json_values,
        "tool_calls": json_values,
        "refusal": json_values,
    },
)
field_values = {
    name: json_values
    for name in ChatCompletionRequest.model_fields
    if name not in ("model", "messages")
}
bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["echo", "", "nope"]) | json_values,
        "messages": st.lists(messages, max_size=3) | json_values,
    },
    optional={
        **field_values,
        "stream": st.booleans() | json_values,
        "max_tokens": st.integers() | json_values,
        "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=6),
        "stream_options": st.fixed_dictionaries(
            {}, optional={"include_usage": st.booleans() | json_values}
        )
        | json_values,
        "extra_thing": json_values,
    },
)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}


async def test_no_body_gives_a_5xx(served: Served) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def run(body: dict[str, Any]) -> None:
        with httpx.Client(base_url=served.base_url, timeout=20) as c:
            _check(
                c.post(
                    URL, headers={**AUTH, "Content-Type": "application/json"}, content=_dumps(body)
                )
            )

    await asyncio.to_thread(run)


async def test_no_raw_bytes_give_a_5xx(served: Served) -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=st.binary(max_size=200) | json_values.map(_dumps))
    def run(raw: bytes) -> None:
        with httpx.Client(base_url=served.base_url, timeout=20) as c:
            _check(c.post(URL, headers=AUTH, content=raw))

    await asyncio.to_thread(run)


async def test_no_model_path_gives_a_5xx(served: Served) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        name=st.text(min_size=1, max_size=40, alphabet=st.characters(blacklist_categories=["Cs"]))
    )
    def run(name: str) -> None:
        with httpx.Client(base_url=served.base_url, timeout=20) as c:
            r = c.get("/v1/models/" + quote(name, safe=""), headers=AUTH)
            assert r.status_code < 500, r.text

    await asyncio.to_thread(run)


def test_floats_are_not_special_cased() -> None:
    # NaN never passes the range checks on sampling knobs.
    assert not (0 <= math.nan <= 2)


input_parts = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["input_text", "output_text", "refusal"]),
            "text": st.text(max_size=20) | json_values,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_image"), "image_url": image_urls | json_values},
        optional={"detail": json_values, "file_id": json_values},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["input_file", "input_audio", "x"])}),
    json_values,
)
input_items = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["message", "reasoning", "mcp_call", "function_call", "item_reference"]
        )
        | json_values,
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | json_values,
        "content": st.text(max_size=30) | st.lists(input_parts, max_size=3) | json_values,
        "server_label": st.sampled_from(["claude_code", "other"]) | json_values,
        "id": json_values,
        "status": json_values,
    },
)
response_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["echo", "", "nope"]) | json_values,
        "input": st.text(max_size=30) | st.lists(input_items, max_size=3) | json_values,
    },
    optional={
        name: json_values
        for name in ResponseCreateRequest.model_fields
        if name not in ("model", "input")
    },
)


async def test_no_responses_body_gives_a_5xx(served: Served) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=response_bodies)
    def run(body: dict[str, Any]) -> None:
        with httpx.Client(base_url=served.base_url, timeout=20) as c:
            _check(
                c.post(
                    "/v1/responses",
                    headers={**AUTH, "Content-Type": "application/json"},
                    content=_dumps(body),
                )
            )

    await asyncio.to_thread(run)


async def test_no_response_or_session_path_gives_a_5xx(served: Served) -> None:
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        name=st.text(min_size=1, max_size=40, alphabet=st.characters(blacklist_categories=["Cs"])),
        where=st.sampled_from(
            [
                "/v1/responses/{}",
                "/v1/responses/resp_{}/input_items",
                "/v1/sessions/{}",
                "/v1/sessions/s/files/{}",
            ]
        ),
    )
    def run(name: str, where: str) -> None:
        with httpx.Client(base_url=served.base_url, timeout=20) as c:
            r = c.get(
                where.format(quote(name, safe="")),
                headers=AUTH,
                params={"limit": name, "order": name, "after": name},
            )
            assert r.status_code < 500, r.text

    await asyncio.to_thread(run)
