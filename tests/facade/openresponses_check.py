"""Checks Responses API objects and streams against the OpenResponses spec (the
``openresponses-types`` package, spec 2026-04-24) and the official openai SDK's types.

Any test may call these on what the service sent (dicts, as parsed from JSON):

- :func:`check_response` a response object (create, retrieve, cancel, inside events);
  :func:`checked` one the openai SDK parsed, as the JSON it came from;
- :func:`check_event` one stream event (SSE or WebSocket);
- :func:`check_stream` a whole stream: every event, ``sequence_number`` 0, 1, 2, ...,
  the lifecycle, and the last event matching the final status; returns the final
  response object;
- :func:`check_input_items` an input items page;
- :func:`check_compaction` a ``response.compaction`` object (POST /v1/responses/compact);
- :func:`check_websocket_error` an ``error`` message of WebSocket mode;
- :func:`sse_events` parses an SSE body, checking each ``event:`` names its data's type.

The spec's core set of items, tools and events is smaller than OpenAI's; the
spec lets providers add their own ("items are extensible"). This service keeps
OpenAI's names for the ones it uses outside that set (``mcp_call``,
``custom_tool_call`` items and their events, ``custom`` and hosted tools),
because OpenAI clients parse and resend them. Those are checked against the
openai SDK's types only; everything else against both.
"""

from __future__ import annotations

import copy
import inspect
import json
from enum import Enum
from typing import Any, TypeVar

import openresponses_types as spec
from openai.types.responses import (
    CompactedResponse,
    Response,
    ResponseItem,
    ResponseItemList,
    ResponseOutputItem,
    ResponseStreamEvent,
    Tool,
)
from openai.types.responses.responses_server_event import ResponseWsError
from pydantic import BaseModel, TypeAdapter

SPEC_ITEM_TYPES = frozenset(
    {"message", "function_call", "function_call_output", "reasoning", "compaction"}
)
_SPEC_ITEM: TypeAdapter[Any] = TypeAdapter(
    spec.Message
    | spec.FunctionCall
    | spec.FunctionCallOutput
    | spec.ReasoningBody
    # CompactionBody last: spec.ReasoningBody etc. are distinguished by their type literal.
    | spec.CompactionBody
)
_OPENAI_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
_OPENAI_OUTPUT_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseOutputItem)
_OPENAI_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
_OPENAI_TOOL: TypeAdapter[Any] = TypeAdapter(Tool)

# The last event of a stream for each final status.
TERMINAL = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "cancelled": "response.incomplete",
    "failed": "response.failed",
}


def _spec_events() -> dict[str, type[BaseModel]]:
    """The spec's streaming event models by their ``type`` value."""
    out: dict[str, type[BaseModel]] = {}
    for name, cls in inspect.getmembers(spec, inspect.isclass):
        if not (name.endswith("StreamingEvent") and issubclass(cls, BaseModel)):
            continue
        kind = cls.model_fields["type"].annotation
        if isinstance(kind, type) and issubclass(kind, Enum):
            (member,) = list(kind)
            out[str(member.value)] = cls
    return out


SPEC_EVENTS = _spec_events()


def _spec_view(response: dict[str, Any]) -> dict[str, Any]:
    """The response as the spec's core types see it: extension items, tools and a
    tool_choice naming them (checked with the openai SDK first) left out."""
    view = copy.deepcopy(response)
    for item in response["output"]:
        if item["type"] not in SPEC_ITEM_TYPES:
            _OPENAI_OUTPUT_ITEM.validate_python(item)
    view["output"] = [i for i in response["output"] if i["type"] in SPEC_ITEM_TYPES]
    for tool in response["tools"]:
        _OPENAI_TOOL.validate_python(tool)
    view["tools"] = [t for t in response["tools"] if t.get("type") == "function"]
    choice = response["tool_choice"]
    if isinstance(choice, dict) and not (
        choice.get("type") == "function"
        or (
            choice.get("type") == "allowed_tools"
            and all(t.get("type") == "function" for t in choice.get("tools", []))
        )
    ):
        view["tool_choice"] = choice.get("mode", "auto")
    fmt = view["text"]["format"]
    if fmt.get("type") == "json_schema":
        # openresponses-types 2.4.0 types `schema` as None (the spec: object or null).
        assert fmt.get("schema") is None or isinstance(fmt["schema"], dict), fmt
        fmt["schema"] = None
    return view


def check_response(response: dict[str, Any]) -> None:
    """A response object is valid for the spec and the openai SDK, and consistent."""
    Response.model_validate(response)
    spec.ResponseResource.model_validate(_spec_view(response))
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        assert isinstance(response[name], int | float), (name, response[name])
    status = response["status"]
    assert (response["incomplete_details"] is not None) == (status == "incomplete"), response
    assert (response["error"] is not None) == (status == "failed"), response
    if status == "in_progress":
        return
    if status == "completed":
        usage = response["usage"]
        assert usage is not None, "a completed response reports its usage"
        assert "cached_tokens" in usage["input_tokens_details"]
        assert "reasoning_tokens" in usage["output_tokens_details"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert response["completed_at"] is not None
        for item in response["output"]:
            assert item.get("status", "completed") in ("completed", "failed"), item
    for item in response["output"]:
        _check_phase(item)
        if item["type"] == "message":
            assert "phase" in item, f"a finished message says its phase: {item}"


_SDKResponse = TypeVar("_SDKResponse", bound=Response)


def checked(response: _SDKResponse) -> _SDKResponse:
    """An SDK-parsed response, returned after :func:`check_response` of its JSON
    (the SDK keeps the fields the service sent, extensions included)."""
    check_response(json.loads(response.to_json()))
    return response


def _check_phase(item: dict[str, Any]) -> None:
    # The spec's JSON schema allows the field to be absent, never null.
    if item["type"] == "message" and "phase" in item:
        assert item["phase"] in ("commentary", "final_answer"), item


def check_event(event: dict[str, Any]) -> None:
    """One stream event is valid for the spec (where it defines the type) and the SDK."""
    _OPENAI_EVENT.validate_python(event)
    assert isinstance(event.get("sequence_number"), int), event
    model = SPEC_EVENTS.get(event["type"])
    if model is None:
        return  # an OpenAI event outside the spec's core set: checked by the SDK
    view = dict(event)
    if "response" in event:
        check_response(event["response"])
        view["response"] = _spec_view(event["response"])
    item = event.get("item")
    if isinstance(item, dict):
        _check_phase(item)
    if isinstance(item, dict) and item["type"] not in SPEC_ITEM_TYPES:
        _OPENAI_OUTPUT_ITEM.validate_python(item)
        view["item"] = None
    model.model_validate(view)


def check_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole stream is valid and in order; returns its final response object."""
    assert events, "no events"
    for event in events:
        check_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"], types[:2]
    final: dict[str, Any] = events[-1]["response"]
    assert types[-1] == TERMINAL[final["status"]], (types[-1], final["status"])
    assert sum(t in TERMINAL.values() for t in types) == 1, types
    added = [e for e in events if e["type"] == "response.output_item.added"]
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in added] == list(range(len(added)))
    assert sorted(e["output_index"] for e in done) == list(range(len(done)))
    # The final object has exactly the items the stream closed, as they closed.
    by_index = {e["output_index"]: e["item"] for e in done}
    assert final["output"] == [by_index[i] for i in range(len(done))]
    for e in added:
        assert e["item"].get("status", "in_progress") == "in_progress", e
    return final


def check_input_items(page: dict[str, Any]) -> None:
    """An input items page is valid for the openai SDK; its items for the spec too."""
    ResponseItemList.model_validate(page)
    for item in page["data"]:
        _OPENAI_ITEM.validate_python(item)
        if item["type"] in SPEC_ITEM_TYPES:
            _SPEC_ITEM.validate_python(item)


def check_compaction(compacted: dict[str, Any]) -> None:
    """A compacted resource is valid for the spec and the openai SDK."""
    spec.CompactResource.model_validate(compacted)
    # The SDK types the output as output items, though it holds the user's messages too.
    CompactedResponse.model_validate({**compacted, "output": []})
    for item in compacted["output"]:
        _OPENAI_ITEM.validate_python(item)
    assert any(i["type"] == "compaction" for i in compacted["output"]), compacted["output"]


def check_websocket_error(event: dict[str, Any]) -> None:
    """An error message of WebSocket mode: the spec's WebSocketErrorEvent."""
    spec.WebSocketErrorEvent.model_validate(event)
    ResponseWsError.model_validate(event)


def sse_events(body: str) -> list[dict[str, Any]]:
    """The data of each SSE block; ``event:`` must match its ``type`` (the spec's rule)."""
    out: list[dict[str, Any]] = []
    assert body.endswith("\n\n"), body[-50:]
    for block in body.split("\n\n"):
        if not block or block.startswith(":"):
            continue
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == lines[0][len("event: ") :], block
        out.append(data)
    return out
