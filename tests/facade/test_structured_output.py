"""Structured-output parameters checked and turned into claudecode.v1.OutputFormat
and passed to the core by the chat and responses resources (against the fake core)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import grpc
import httpx
import pytest
from openai.lib._parsing._completions import type_to_response_format_param
from openai.lib._parsing._responses import type_to_text_format_param
from pydantic import BaseModel

from claudecode.v1 import agent_pb2 as pb
from http_facade.errors import ApiError, from_status
from http_facade.structured_output import (
    CHAT_NEEDS_JSON,
    RESPONSES_NEEDS_JSON,
    chat_output_format,
    responses_output_format,
)
from tests.facade.conftest import AUTH
from tests.facade.fake_core import FakeCore

USER = [{"role": "user", "content": "Record the order."}]
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}


class Status(StrEnum):
    open = "open"
    shipped = "shipped"


class Item(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    customer: str
    items: list[Item]
    status: Status


def _error(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


def test_the_sdks_parse_helpers_map_to_a_strict_schema() -> None:
    # What client.chat.completions.parse(response_format=Order) sends.
    chat = chat_output_format(type_to_response_format_param(Order), USER)
    assert chat is not None
    assert (chat.kind, chat.name, chat.strict) == (pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA, "Order", True)
    schema = json.loads(chat.schema_json)
    assert schema["properties"]["items"]["type"] == "array"
    assert "$defs" in schema and schema["additionalProperties"] is False
    # What client.responses.parse(text_format=Order) sends.
    responses = responses_output_format(type_to_text_format_param(Order), "Record it.")
    assert responses is not None and json.loads(responses.schema_json) == schema


def test_non_strict_schema_with_description() -> None:
    fmt = chat_output_format(
        {
            "type": "json_schema",
            "json_schema": {
                "name": "weather",
                "description": "A forecast",
                "schema": {"type": "object", "properties": {"temp": {"type": "number"}}},
            },
        },
        USER,
    )
    assert fmt is not None and not fmt.strict and fmt.description == "A forecast"


def test_text_is_free_text() -> None:
    assert chat_output_format(None, USER) is None
    assert chat_output_format({"type": "text"}, USER) is None
    assert responses_output_format({"type": "text"}, "hi") is None


def test_json_object_needs_the_word_json() -> None:
    asked = [{"role": "system", "content": "Answer in JSON."}, *USER]
    fmt = chat_output_format({"type": "json_object"}, asked)
    assert fmt is not None and fmt.kind == pb.OUTPUT_FORMAT_KIND_JSON_OBJECT
    parts = [{"role": "user", "content": [{"type": "text", "text": "give me json"}]}]
    assert chat_output_format({"type": "json_object"}, parts) is not None
    refused = _error(chat_output_format, {"type": "json_object"}, USER)
    assert (refused.message, refused.param) == (CHAT_NEEDS_JSON, "messages")

    assert responses_output_format({"type": "json_object"}, "hi", "Reply as JSON") is not None
    items = [{"role": "user", "content": [{"type": "input_text", "text": "JSON please"}]}]
    assert responses_output_format({"type": "json_object"}, items) is not None
    refused = _error(responses_output_format, {"type": "json_object"}, "hi")
    assert (refused.message, refused.param) == (RESPONSES_NEEDS_JSON, "input")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "objekt"},
        {"type": "object", "properties": {"a": {"type": "string", "minLength": -1}}},
        {"type": "object", "required": "a"},
    ],
)
def test_a_schema_that_is_not_json_schema_names_its_param(schema: dict[str, Any]) -> None:
    chat = _error(
        chat_output_format,
        {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        USER,
    )
    assert chat.param == "response_format.json_schema.schema"
    assert chat.message.startswith("Invalid schema for response_format 'x'")
    responses = _error(
        responses_output_format, {"type": "json_schema", "name": "x", "schema": schema}, "hi"
    )
    assert responses.param == "text.format.schema"


def test_the_root_must_be_an_object() -> None:
    refused = _error(
        chat_output_format,
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
        USER,
    )
    assert refused.param == "response_format.json_schema.schema"
    assert 'type: "object"' in refused.message


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ("json", "response_format"),
        ({"type": "yaml"}, "response_format.type"),
        ({}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": {"schema": {}}},
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}},
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "n" * 65}},
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "strict": "yes"}},
            "response_format.json_schema.strict",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": []}},
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "extra": 1}},
            "response_format.json_schema.extra",
        ),
        ({"type": "json_schema", "schema": {}}, "response_format.schema"),
        ({"type": "text", "json_schema": {}}, "response_format.json_schema"),
    ],
)
def test_bad_chat_formats_name_the_param(response_format: Any, param: str) -> None:
    assert _error(chat_output_format, response_format, USER).param == param


@pytest.mark.parametrize(
    ("text_format", "param"),
    [
        ({"type": "json_schema", "schema": {"type": "object"}}, "text.format.name"),
        ({"type": "json_schema", "name": "a"}, "text.format.schema"),
        (
            {"type": "json_schema", "name": "a", "schema": {}, "json_schema": {}},
            "text.format.json_schema",
        ),
        ({"type": "markdown"}, "text.format.type"),
    ],
)
def test_bad_responses_formats_name_the_param(text_format: Any, param: str) -> None:
    assert _error(responses_output_format, text_format, "json").param == param


def test_running_out_of_retries_is_a_502() -> None:
    # What the core raises when Claude Code gives up (core_service/agent/structured_output.py).
    error = from_status(grpc.StatusCode.INTERNAL, "no document", "structured_output_failed")
    assert (error.status, error.type, error.code) == (
        502,
        "server_error",
        "structured_output_failed",
    )


async def test_the_resources_pass_both_to_the_core(
    client: httpx.AsyncClient, fake: FakeCore
) -> None:
    chat = await client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={
            "model": "echo",
            "messages": [{"role": "user", "content": "json please"}],
            "response_format": {"type": "json_object"},
        },
    )
    assert chat.status_code == 200
    assert fake.requests[-1][0].output_format.kind == pb.OUTPUT_FORMAT_KIND_JSON_OBJECT
    responses = await client.post(
        "/v1/responses",
        headers=AUTH,
        json={
            "model": "echo",
            "input": "weather",
            "text": {"format": {"type": "json_schema", "name": "w", "schema": SCHEMA}},
        },
    )
    assert responses.status_code == 200
    sent = fake.requests[-1][0].output_format
    assert sent.kind == pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA and json.loads(sent.schema_json) == SCHEMA
    # The response object repeats the format back, as OpenAI's does.
    assert responses.json()["text"]["format"]["name"] == "w"
    # Free text stays free text.
    plain = await client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "echo", "messages": USER, "response_format": {"type": "text"}},
    )
    assert plain.status_code == 200 and not fake.requests[-1][0].HasField("output_format")


async def test_the_resources_refuse_bad_formats_by_name(client: httpx.AsyncClient) -> None:
    chat = await client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "echo", "messages": USER, "response_format": {"type": "json_object"}},
    )
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages"
    responses = await client.post(
        "/v1/responses",
        headers=AUTH,
        json={"model": "echo", "input": "x", "text": {"format": {"type": "xml"}}},
    )
    assert responses.status_code == 400
    assert responses.json()["error"]["param"] == "text.format.type"
