"""The output format is part of a Claude Code process's shape: equal schemas
share a process, another schema (or none) needs its own."""

from __future__ import annotations

import json
from typing import Any

from claudecode.v1 import agent_pb2 as pb
from core_service.agent.options import ProcessShape, same_process
from core_service.agent.structured_output import shape_value


def schema_format(schema: dict[str, Any]) -> pb.OutputFormat:
    return pb.OutputFormat(
        kind=pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA, name="s", schema_json=json.dumps(schema)
    )


A: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
}
# The same schema with its keys in another order.
A_REORDERED: dict[str, Any] = {
    "properties": {"b": {"type": "integer"}, "a": {"type": "string"}},
    "type": "object",
}
B: dict[str, Any] = {"type": "object", "properties": {"c": {"type": "string"}}}


def test_free_text_has_no_output_format() -> None:
    assert shape_value(None) == "" and shape_value(pb.OutputFormat()) == ""


def test_the_option_is_canonical_json() -> None:
    assert shape_value(schema_format(A)) == shape_value(schema_format(A_REORDERED))
    assert json.loads(shape_value(schema_format(A))) == {"type": "json_schema", "schema": A}
    json_object = pb.OutputFormat(kind=pb.OUTPUT_FORMAT_KIND_JSON_OBJECT)
    assert json.loads(shape_value(json_object))["schema"] == {"type": "object"}


def test_another_schema_needs_another_process() -> None:
    plain = ProcessShape(model="m")
    with_a = ProcessShape(model="m", output_format=shape_value(schema_format(A)))
    with_a_again = ProcessShape(model="n", output_format=shape_value(schema_format(A_REORDERED)))
    with_b = ProcessShape(model="m", output_format=shape_value(schema_format(B)))
    assert same_process(with_a, with_a_again)
    assert not same_process(with_a, with_b)
    assert not same_process(plain, with_a) and not same_process(with_a, plain)
