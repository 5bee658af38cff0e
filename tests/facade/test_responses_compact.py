"""Live: POST /v1/responses/compact runs Claude Code's own /compact, and the
compaction item it returns starts a new chain that Claude Code continues from
the summary (issue 14 item 4). Real stack, real CLI, the model double."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import CompactedResponse

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, log_row, user_texts
from tests.facade.openresponses_check import check_compaction, checked
from tests.model_double import COMPACTION_SUMMARY_PREFIX
from tests.stack import ccapi

MODEL = "sonnet"


@pytest.fixture(scope="module")
def other_sdk(core: CoreProcess, facade: Facade) -> Iterator[openai.OpenAI]:
    key = ccapi(core.env, "keys", "create", "--name", "compact-other").strip().splitlines()[-1]
    client = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=key, max_retries=0, timeout=90)
    yield client
    client.close()


def echo(model_double: ModelDouble) -> None:
    # The last line: after /compact Claude Code sends the command's own record
    # (caveat, command, "Compacted") in the same user message as the next prompt.
    model_double.set_default(
        Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text.splitlines()[-1]}"))
    )


def check_shape(compacted: CompactedResponse) -> dict[str, Any]:
    """The spec's CompactResource (checked by openresponses_check): the request's
    user messages, then this service's compaction item; the item."""
    raw: dict[str, Any] = json.loads(compacted.to_json())
    check_compaction(raw)
    assert raw["object"] == "response.compaction" and raw["id"].startswith("resp_")
    *users, item = raw["output"]
    for user in users:
        assert set(user) == {"id", "type", "status", "role", "content"}
    assert user_roles(users) == ["user"] * len(users)
    assert item["type"] == "compaction" and item["id"].startswith("cmp_")
    assert isinstance(item["encrypted_content"], str) and len(item["encrypted_content"]) > 40
    assert raw["usage"]["input_tokens"] > 0
    assert raw["usage"]["total_tokens"] >= raw["usage"]["input_tokens"]
    return dict(item)


def user_roles(items: list[dict[str, Any]]) -> list[str]:
    return [str(i["role"]) for i in items if i["type"] == "message"]


def test_compact_a_chain_then_go_on_from_the_item(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("Noted, Ada."), Reply.text("It is 4."))
    first = sdk.responses.create(model=MODEL, input="My name is Ada. Remember it.")
    second = sdk.responses.create(model=MODEL, input="What is 2+2?", previous_response_id=first.id)

    request_id = "req-" + secrets.token_hex(8)
    compacted = sdk.responses.compact(
        model=MODEL,
        previous_response_id=second.id,
        prompt_cache_key="conv-1",
        extra_headers={"X-Request-Id": request_id},
    )
    item = check_shape(compacted)
    # Claude Code asked the model for a summary of the whole conversation.
    asked = model_double.compaction_requests[-1]
    assert asked.conversation_texts == [
        "user: My name is Ada. Remember it.",
        "assistant: Noted, Ada.",
        "user: What is 2+2?",
        "assistant: It is 4.",
    ]
    # Booked like a turn.
    row = log_row(core, "/v1/responses/compact", request_id)
    assert row.status == 200 and row.usage.input_tokens > 0 and row.model

    # A new chain from the item: Claude Code goes on from the summary alone.
    echo(model_double)
    window: list[Any] = json.loads(compacted.to_json())["output"]
    resumed = checked(
        sdk.responses.create(
            model=MODEL, input=[*window, {"role": "user", "content": "What is my name?"}]
        )
    )
    assert resumed.output_text == "echo: What is my name?"
    seen = model_double.main_requests[-1]
    texts = user_texts(seen)
    assert any(COMPACTION_SUMMARY_PREFIX in t and "My name is Ada" in t for t in texts)
    # The conversation starts with the summary; the first exchange is only in it
    # (Claude Code 2.1.331 keeps the last answer after the summary).
    assert COMPACTION_SUMMARY_PREFIX in texts[0]
    assert "My name is Ada. Remember it." not in [t.strip() for t in texts]
    assert "Noted, Ada." not in str([m for m in seen.messages if m["role"] == "assistant"])

    # That chain goes on as any other.
    again = checked(
        sdk.responses.create(model=MODEL, input="And again?", previous_response_id=resumed.id)
    )
    assert again.output_text == "echo: And again?"
    seen = model_double.main_requests[-1]
    assert any(COMPACTION_SUMMARY_PREFIX in t for t in user_texts(seen))
    assert "echo: What is my name?" in str(seen.messages)

    # The earlier chain is untouched: a fork from before the compaction has no summary.
    old = sdk.responses.create(model=MODEL, input="Still there?", previous_response_id=first.id)
    assert old.output_text == "echo: Still there?"
    assert not any(
        COMPACTION_SUMMARY_PREFIX in t for t in user_texts(model_double.main_requests[-1])
    )

    # Another key can use neither the item nor the responses.
    with pytest.raises(openai.NotFoundError):
        other_sdk.responses.create(
            model=MODEL,
            input=[item, {"role": "user", "content": "hi"}],  # type: ignore[list-item]
        )
    with pytest.raises(openai.NotFoundError) as foreign:
        other_sdk.responses.compact(model=MODEL, previous_response_id=second.id)
    assert foreign.value.body is not None


def test_compact_input_alone(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    echo(model_double)
    compacted = sdk.responses.compact(
        model=MODEL,
        input=[
            {"role": "user", "content": "We are building a shed."},
            {"role": "assistant", "content": "Wood first, then the roof."},
            {"role": "user", "content": "Good plan."},
        ],
    )
    item = check_shape(compacted)
    window: list[Any] = json.loads(compacted.to_json())["output"]
    assert [o["content"][0]["text"] for o in window[:-1]] == [
        "We are building a shed.",
        "Good plan.",
    ]
    summarised = model_double.compaction_requests[-1].conversation_texts
    assert any("We are building a shed." in t for t in summarised)
    assert any("Wood first, then the roof." in t for t in summarised)

    resumed = checked(
        sdk.responses.create(
            model=MODEL,
            input=[item, {"role": "user", "content": "What are we building?"}],  # type: ignore[list-item]
        )
    )
    assert resumed.output_text == "echo: What are we building?"
    texts = user_texts(model_double.main_requests[-1])
    assert any(COMPACTION_SUMMARY_PREFIX in t and "shed" in t for t in texts)

    # A client keeping the history itself (store: false) resends all of it: the
    # session is recognised and goes on, summary and all.
    history: list[Any] = [
        *window,
        {"role": "user", "content": "What are we building?"},
        {"role": "assistant", "content": resumed.output_text},
        {"role": "user", "content": "How big?"},
    ]
    later = checked(sdk.responses.create(model=MODEL, input=history, store=False))
    assert later.output_text == "echo: How big?"
    seen = model_double.main_requests[-1]
    assert any(COMPACTION_SUMMARY_PREFIX in t for t in user_texts(seen))
    assert "echo: What are we building?" in str(seen.messages)
    assert (later.model_extra or {})["claude_code"]["session_id"] == (
        resumed.model_extra or {}
    )["claude_code"]["session_id"]

    # Compacting a compacted chain: the new summary covers the earlier one.
    more: list[Any] = [item, {"role": "user", "content": "Make it a big shed."}]
    again = sdk.responses.compact(model=MODEL, input=more)
    check_shape(again)
    summarised = model_double.compaction_requests[-1].conversation_texts
    assert any(COMPACTION_SUMMARY_PREFIX in t and "building a shed" in t for t in summarised)
    assert any("Make it a big shed." in t for t in summarised)


def _post(facade: Facade, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        facade.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return dict(error)


def test_invalid_compactions(facade: Facade, core: CoreProcess) -> None:
    key = core.api_key
    error = _error(_post(facade, key, "/v1/responses/compact", {"input": "hi"}), 400)
    assert error["param"] == "model" and error["type"] == "invalid_request_error"
    error = _error(_post(facade, key, "/v1/responses/compact", {"model": MODEL}), 400)
    assert error["param"] == "input"
    error = _error(
        _post(
            facade,
            key,
            "/v1/responses/compact",
            {"model": MODEL, "previous_response_id": "resp_nope"},
        ),
        404,
    )
    assert error["param"] == "previous_response_id" and "resp_nope" in error["message"]
    error = _error(
        _post(facade, key, "/v1/responses/compact", {"model": MODEL, "input": "x", "n": 1}), 400
    )
    assert error["param"] == "n"
    # A forged item is no item at all.
    forged = {"type": "compaction", "encrypted_content": "ccapi_cmp_v1.e30.AAAA"}
    error = _error(
        _post(
            facade,
            key,
            "/v1/responses",
            {"model": MODEL, "input": [forged, {"role": "user", "content": "hi"}]},
        ),
        404,
    )
    error = _error(
        _post(
            facade,
            key,
            "/v1/responses",
            {"model": MODEL, "input": [{"type": "compaction"}, {"role": "user", "content": "x"}]},
        ),
        400,
    )
    assert error["param"] == "input[0].encrypted_content"
