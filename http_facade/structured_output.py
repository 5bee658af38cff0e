"""A request's structured-output wish, checked and turned into
`claudecode.v1.OutputFormat`. Pure functions, no I/O.

Chat Completions and the Responses API spell it differently:

- chat `response_format`: `{"type": "text"}`, `{"type": "json_object"}` or
  `{"type": "json_schema", "json_schema": {name, description, schema, strict}}`;
- Responses `text.format`: the same types, the json_schema fields flat
  (`{"type": "json_schema", name, description, schema, strict}`).

`text` is free text (no OutputFormat). A schema must be a valid JSON Schema
(draft 2020-12, checked with `jsonschema`) whose root is an object: Claude
Code offers the model the schema as a tool's input, and tool inputs are
objects (OpenAI requires the same). OpenAI's strict-mode subset (every
property required, `additionalProperties: false`) is not enforced: Claude
Code validates any schema, so strict and non-strict schemas both work.
`json_object` needs the word "JSON" somewhere in the messages, as OpenAI
requires, with OpenAI's own 400.

The chat and responses translators put the result on
`RunTurnRequest.output_format`; the core runs the turn with Claude Code's
structured output (core_service/agent/structured_output.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from claudecode.v1 import agent_pb2 as pb
from http_facade.errors import ApiError, invalid_request

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
NAME_MAX = 64
TYPES = ("text", "json_object", "json_schema")
SCHEMA_FIELDS = ("name", "description", "schema", "strict")
# OpenAI's wording, with the `param` it names.
CHAT_NEEDS_JSON = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
    "'json_object'."
)
RESPONSES_NEEDS_JSON = (
    "Response input messages must contain the word 'json' in some form to use 'text.format' "
    "of type 'json_object'."
)


def chat_output_format(response_format: Any, messages: Any) -> pb.OutputFormat | None:
    """Chat `response_format` as an OutputFormat (None for free text); 400 naming the param."""
    if response_format is None:
        return None
    fmt = _object(response_format, "response_format")
    kind = _type(fmt, "response_format")
    if kind == "text":
        _only(fmt, ("type",), "response_format")
        return None
    if kind == "json_object":
        _only(fmt, ("type",), "response_format")
        if not _mentions_json(_chat_texts(messages)):
            raise invalid_request(CHAT_NEEDS_JSON, "messages")
        return pb.OutputFormat(kind=pb.OUTPUT_FORMAT_KIND_JSON_OBJECT)
    _only(fmt, ("type", "json_schema"), "response_format")
    if "json_schema" not in fmt:
        raise _missing("response_format.json_schema")
    spec = _object(fmt["json_schema"], "response_format.json_schema")
    _only(spec, SCHEMA_FIELDS, "response_format.json_schema")
    return _schema_format(spec, "response_format.json_schema", "response_format")


def responses_output_format(
    text_format: Any, input_items: Any, instructions: Any = None
) -> pb.OutputFormat | None:
    """Responses `text.format` as an OutputFormat (None for free text); 400 naming the param."""
    if text_format is None:
        return None
    fmt = _object(text_format, "text.format")
    kind = _type(fmt, "text.format")
    if kind == "text":
        _only(fmt, ("type",), "text.format")
        return None
    if kind == "json_object":
        _only(fmt, ("type",), "text.format")
        texts = [*_responses_texts(input_items)]
        if isinstance(instructions, str):
            texts.append(instructions)
        if not _mentions_json(texts):
            raise invalid_request(RESPONSES_NEEDS_JSON, "input")
        return pb.OutputFormat(kind=pb.OUTPUT_FORMAT_KIND_JSON_OBJECT)
    _only(fmt, ("type", *SCHEMA_FIELDS), "text.format")
    if "schema" not in fmt:
        raise _missing("text.format.schema")
    return _schema_format(fmt, "text.format", "text.format")


# --- the json_schema fields --------------------------------------------------------------


def text_format_of(fmt: pb.OutputFormat) -> dict[str, Any]:
    """A stored turn's output format as the Responses API's `text.format`."""
    if fmt.kind == pb.OUTPUT_FORMAT_KIND_JSON_OBJECT:
        return {"type": "json_object"}
    if fmt.kind != pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA:
        return {"type": "text"}
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": fmt.name,
        "schema": json.loads(fmt.schema_json or "{}"),
        "strict": fmt.strict,
    }
    if fmt.description:
        out["description"] = fmt.description
    return out


def _schema_format(spec: Mapping[str, Any], param: str, owner: str) -> pb.OutputFormat:
    name = spec.get("name")
    if name is None:
        raise _missing(f"{param}.name")
    if not isinstance(name, str):
        raise _wrong_type(f"{param}.name", "a string", name)
    if len(name) > NAME_MAX:
        raise invalid_request(
            f"Invalid '{param}.name': string too long. Expected a string with maximum length "
            f"{NAME_MAX}, but got a string with length {len(name)} instead.",
            f"{param}.name",
            "string_above_max_length",
        )
    if not NAME_RE.match(name):
        raise invalid_request(
            f"Invalid '{param}.name': string does not match pattern. Expected a string that "
            f"matches the pattern '{NAME_RE.pattern}'.",
            f"{param}.name",
            "invalid_value",
        )
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise _wrong_type(f"{param}.description", "a string", description)
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _wrong_type(f"{param}.strict", "a boolean", strict)
    schema = spec.get("schema", {"type": "object"})
    schema_param = f"{param}.schema"
    if not isinstance(schema, dict):
        raise _wrong_type(schema_param, "an object", schema)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = "/".join(str(p) for p in err.path)
        raise invalid_request(
            f"Invalid schema for {owner} '{name}': {err.message}"
            + (f" (at '{where}')." if where else "."),
            schema_param,
            "invalid_json_schema",
        ) from None
    if schema.get("type") != "object":
        raise invalid_request(
            f"Invalid schema for {owner} '{name}': schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: {json.dumps(schema.get('type'))}'.",
            schema_param,
            "invalid_json_schema",
        )
    return pb.OutputFormat(
        kind=pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA,
        name=name,
        description=description or "",
        schema_json=json.dumps(schema, ensure_ascii=False),
        strict=bool(strict),
    )


# --- helpers -----------------------------------------------------------------------------


def _object(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    return value


def _type(fmt: Mapping[str, Any], param: str) -> str:
    kind = fmt.get("type")
    if kind is None:
        raise _missing(f"{param}.type")
    if kind not in TYPES:
        raise invalid_request(
            f"Invalid value: {json.dumps(kind)}. Supported values are: 'text', 'json_object', "
            "and 'json_schema'.",
            f"{param}.type",
            "invalid_value",
        )
    return str(kind)


def _only(fmt: Mapping[str, Any], allowed: Iterable[str], param: str) -> None:
    allowed = set(allowed)
    for key in fmt:
        if key not in allowed:
            raise invalid_request(
                f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}", "unknown_parameter"
            )


def _missing(param: str) -> ApiError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _wrong_type(param: str, expected: str, got: Any) -> ApiError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(got)} instead.",
        param,
        "invalid_type",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _mentions_json(texts: Iterable[str]) -> bool:
    return any("json" in text.lower() for text in texts)


def _part_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


def _chat_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return []
    texts: list[str] = []
    for message in messages:
        if isinstance(message, dict):
            texts += _part_texts(message.get("content"))
    return texts


def _responses_texts(input_items: Any) -> list[str]:
    if isinstance(input_items, str):
        return [input_items]
    return _chat_texts(input_items)
