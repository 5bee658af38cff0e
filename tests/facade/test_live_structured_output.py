"""Live: structured output through gunicorn, the real core and the real Claude
Code CLI, with the official openai SDK's parse helpers. The model double makes
the model call Claude Code's StructuredOutput tool with a document."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc, content_pb2
from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply
from tests.facade.sse import events

MODEL = "sonnet"


class Status(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"


class Customer(BaseModel):
    name: str
    vip: bool


class Item(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    customer: Customer
    items: list[Item]
    status: Status


ORDER = {
    "customer": {"name": "Åsa", "vip": True},
    "items": [{"sku": "b-12", "qty": 2}, {"sku": "n-3", "qty": 30}],
    "status": "open",
}
# Non-strict: optional fields, extra properties allowed.
LOOSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
    "required": ["city"],
}


def _document_call(document: dict[str, Any], text_before: str | None = None) -> Reply:
    return Reply.call_tools([("StructuredOutput", document)], text_before=text_before)


def test_chat_parse_with_a_pydantic_model(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(_document_call(ORDER, text_before="Let me record that."))
    done = sdk.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Record the order for Åsa."}],
        response_format=Order,
    )
    message = done.choices[0].message
    assert message.parsed == Order.model_validate(ORDER)
    # Exactly the document: the model's own words are commentary, not the answer.
    assert message.content is not None and json.loads(message.content) == ORDER
    assert message.content == json.dumps(ORDER, ensure_ascii=False, separators=(",", ":"))
    reasoning = message.model_extra["reasoning_content"] if message.model_extra else ""
    assert "Let me record that." in reasoning
    # The client's schema reached Claude Code as the StructuredOutput tool's input.
    offered = model_double.main_requests[-1].offered_tools["StructuredOutput"]
    assert set(offered["input_schema"]["properties"]) == {"customer", "items", "status"}


def test_chat_streaming_sends_the_document_as_content(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(_document_call({"city": "Oslo"}, text_before="Thinking aloud."))
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": "Weather?"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": LOOSE_SCHEMA, "strict": False},
        },
    }
    resp = httpx.post(
        facade.base_url + "/v1/chat/completions",
        json=body,
        timeout=90,
        headers={"Authorization": f"Bearer {core.api_key}"},
    )
    assert resp.status_code == 200
    datas, _ = events(resp.text)
    chunks = [d for d in datas if d != "[DONE]"]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == '{"city":"Oslo"}'


def test_responses_parse_with_text_format(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(_document_call(ORDER))
    done = sdk.responses.parse(model=MODEL, input="Record the order for Åsa.", text_format=Order)
    assert done.output_parsed == Order.model_validate(ORDER)
    assert json.loads(done.output_text) == ORDER
    assert done.text is not None and done.text.format is not None
    assert done.text.format.type == "json_schema"
    # A stored response says which format it was asked for, as the live one did.
    got = sdk.responses.retrieve(done.id)
    assert got.text is not None and got.text.format is not None
    assert got.text.format.model_dump() == done.text.format.model_dump()


def test_responses_non_strict_schema(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(_document_call({"city": "Oslo", "temp": 3, "wind": "calm"}))
    done = sdk.responses.create(
        model=MODEL,
        input="Weather in Oslo?",
        text={
            "format": {
                "type": "json_schema",
                "name": "weather",
                "schema": LOOSE_SCHEMA,
                "strict": False,
            }
        },
    )
    assert json.loads(done.output_text) == {"city": "Oslo", "temp": 3, "wind": "calm"}


def test_json_object_is_any_object(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(_document_call({"anything": [1, {"goes": None}]}))
    done = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={"type": "json_object"},
    )
    assert done.choices[0].message.content == '{"anything":[1,{"goes":null}]}'
    offered = model_double.main_requests[-1].offered_tools["StructuredOutput"]
    assert offered["input_schema"] == {"type": "object"}


def test_json_object_needs_the_word_json(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Answer as an object."}],
            response_format={"type": "json_object"},
        )
    assert refused.value.body["param"] == "messages"  # type: ignore[index]
    assert "must contain the word 'json'" in refused.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=MODEL, input="hi", text={"format": {"type": "json_object"}})
    assert refused.value.body["param"] == "input"  # type: ignore[index]


def test_an_invalid_schema_names_its_param(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "bad", "schema": {"type": "object", "required": 3}},
            },
        )
    assert refused.value.body["param"] == "response_format.json_schema.schema"  # type: ignore[index]


def test_retries_running_out_is_a_502(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.set_default(_document_call({**ORDER, "status": "lost"}))
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.chat.completions.parse(
            model=MODEL,
            messages=[{"role": "user", "content": "Record the order."}],
            response_format=Order,
        )
    assert failed.value.status_code == 502
    body: Any = failed.value.body
    assert (body["type"], body["code"]) == ("server_error", "structured_output_failed")
    assert "/status" in body["message"]


def test_responses_retries_running_out_is_a_502(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.set_default(_document_call({**ORDER, "status": "lost"}))
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.responses.parse(model=MODEL, input="Record the order.", text_format=Order)
    assert failed.value.status_code == 502


def test_grpc_output_format_in_structured_json_out(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(_document_call({"city": "Oslo"}))
    request = pb.RunTurnRequest(
        model=MODEL,
        messages=[
            content_pb2.Message(
                role=content_pb2.ROLE_USER, content=[content_pb2.ContentPart(text="Weather?")]
            )
        ],
        output_format=pb.OutputFormat(
            kind=pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA, name="w", schema_json=json.dumps(LOOSE_SCHEMA)
        ),
    )
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        replies = list(stub.RunTurn(request, metadata=core.metadata(), timeout=90))
    completed = [r.completed for r in replies if r.WhichOneof("event") == "completed"]
    assert len(completed) == 1
    assert completed[0].structured_output_json == '{"city":"Oslo"}'
    assert completed[0].text == '{"city":"Oslo"}'
    # A later free-text turn in a new conversation is plain text again.
    model_double.script(Reply.text("plain"))
    plain = pb.RunTurnRequest(model=MODEL, messages=request.messages)
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        replies = list(stub.RunTurn(plain, metadata=core.metadata(), timeout=90))
    done = next(r.completed for r in replies if r.WhichOneof("event") == "completed")
    assert (done.text, done.structured_output_json) == ("plain", "")
