"""The core's own types against claudecode.v1 and their stored JSON: every
enum value maps both ways, any domain turn survives domain -> proto -> domain
and domain -> JSON -> domain, and the turns the old release stored survive
proto -> domain -> proto."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudecode.v1 import admin_pb2, agent_pb2
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service.domain import codec
from core_service.domain import content as c
from core_service.domain import turn as t
from core_service.domain.live_config import FIELDS, LiveConfig
from core_service.servicers import convert
from tests import old_release

ENUMS: list[tuple[Any, Any, Any, Any]] = [
    (agent_pb2.TurnStatus, t.TurnStatus, convert.status_from_pb, convert.status_to_pb),
    (ev.FinishReason, t.FinishReason, convert.finish_from_pb, convert.finish_to_pb),
    (cpb.Role, c.Role, convert.role_from_pb, convert.role_to_pb),
]


@pytest.mark.parametrize(("wrapper", "domain", "from_pb", "to_pb"), ENUMS)
def test_every_enum_value_maps_both_ways(
    wrapper: Any, domain: Any, from_pb: Any, to_pb: Any
) -> None:
    assert len(wrapper.values()) == len(domain)
    for value in wrapper.values():
        assert to_pb(from_pb(value)) == value


def _proto_fields(message: Any) -> set[str]:
    return {f.name for f in message.DESCRIPTOR.fields}


def test_the_domain_types_have_the_proto_fields() -> None:
    """A field added to the proto fails here until the domain and convert.py carry it."""
    assert set(FIELDS) == _proto_fields(admin_pb2.LiveConfig)
    assert {f.name for f in fields(t.Turn)} == _proto_fields(agent_pb2.Turn)
    assert {f.name for f in fields(c.Message)} == _proto_fields(cpb.Message)
    assert {f.name for f in fields(t.TurnOptions)} == _proto_fields(agent_pb2.TurnOptions)


@pytest.mark.parametrize("turn", old_release.turns("s-1"), ids=lambda turn: turn.id)
def test_stored_proto_turns_survive_the_domain(turn: agent_pb2.Turn) -> None:
    domain = convert.turn_from_pb(turn)
    assert convert.turn_to_pb(domain) == turn
    assert convert.turn_to_pb(codec.turn_from_json(codec.turn_to_json(domain))) == turn


# Strategies: proto-representable values (int32/int64 ranges, finite floats).
text = st.text(max_size=12)
int32 = st.integers(0, 2**31 - 1)
int64 = st.integers(0, 2**63 - 1)
money = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
tool_kind = st.sampled_from(c.ClientToolKind)
call = st.builds(c.ClientToolCall, text, text, tool_kind, text, text, text, text)
output = st.builds(c.ClientToolOutput, text, text, st.booleans(), text)
part = st.one_of(
    st.builds(c.TextPart, text),
    st.builds(c.Image, text, st.binary(max_size=40), text),
    st.builds(c.Attachment, text, st.binary(max_size=40), text, text),
    call,
    output,
)
message = st.builds(
    c.Message, st.sampled_from(c.Role), st.lists(part, max_size=4).map(tuple), text, text
)
tool_use = st.builds(t.ToolUse, text, text, text, text)
tool_result = st.builds(t.ToolResult, text, st.booleans(), text, st.booleans())
item = st.one_of(
    st.builds(t.TextItem, text),
    st.builds(t.ReasoningItem, text),
    tool_use,
    tool_result,
    call,
    output,
)
usage = st.builds(t.Usage, int64, int64, int64, int64, money, int64)
file_change = st.builds(
    t.FileChange, st.sampled_from(t.FileChangeKind), text, int64, st.booleans(), text, st.booleans()
)
sampling = st.none() | st.floats(-2, 2, allow_nan=False)
options = st.builds(
    t.TurnOptions,
    int32,
    text,
    st.lists(text, max_size=3).map(tuple),
    text,
    sampling,
    sampling,
    sampling,
    sampling,
)
output_format = st.builds(
    t.OutputFormat, st.sampled_from(t.OutputFormatKind), text, text, text, st.booleans()
)
client_tool = st.builds(
    c.ClientTool,
    text,
    text,
    text,
    st.booleans(),
    tool_kind,
    st.none() | st.builds(c.CustomToolFormat, text, text, text),
    text,
)


def tuples(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(strategy, max_size=3).map(tuple)


turns = st.builds(
    t.Turn,
    id=text,
    session_id=text,
    parent_turn_id=text,
    model=text,
    status=st.sampled_from(t.TurnStatus),
    created_at=int64,
    completed_at=int64,
    input=tuples(message),
    instructions=text,
    output_text=text,
    reasoning=text,
    tool_uses=tuples(tool_use),
    tool_results=tuples(tool_result),
    files=tuples(file_change),
    usage=st.none() | usage,
    finish_reason=st.sampled_from(t.FinishReason),
    error=st.none() | st.builds(t.TurnError, int32, text, text, int32),
    metadata=st.dictionaries(text, text, max_size=3),
    options=st.none() | options,
    items=tuples(item),
    client_tools=tuples(client_tool),
    client_tool_calls=tuples(call),
    output_format=st.none() | output_format,
)


@settings(max_examples=80, deadline=None)
@given(turns)
def test_any_turn_survives_proto_and_json(turn: t.Turn) -> None:
    assert convert.turn_from_pb(convert.turn_to_pb(turn)) == turn
    assert codec.turn_from_json(codec.turn_to_json(turn)) == turn


live_configs = st.builds(
    LiveConfig,
    model_aliases=st.dictionaries(text, text, max_size=3),
    default_allowed_tools=tuples(text),
    log_level=text,
    cors_origins=tuples(text),
    max_body_bytes=int64,
    log_retention_days=int32,
    workspace_retention_days=int32,
    pool_size=int32,
    claude_max_retries=int32,
    log_bodies=st.booleans(),
    max_live_processes=int32,
    max_running_turns=int32,
    max_queued_turns=int32,
    max_queue_wait_seconds=int32,
    max_concurrent_starts=int32,
    max_file_bytes=int64,
    file_retention_days=int32,
)


@settings(max_examples=60, deadline=None)
@given(live_configs, live_configs)
def test_any_live_config_survives_proto_and_json(config: LiveConfig, base: LiveConfig) -> None:
    assert convert.live_config_from_pb(convert.live_config_to_pb(config)) == config
    # A stored version carries every field, so the base it is read over does not matter.
    assert codec.live_config_from_json(codec.live_config_to_json(config), base) == config


def test_a_version_saved_before_a_field_existed_keeps_the_base_value() -> None:
    base = LiveConfig(max_file_bytes=4096, log_level="info")
    assert codec.live_config_from_json('{"log_level": "debug"}', base) == LiveConfig(
        max_file_bytes=4096, log_level="debug"
    )


def test_an_input_assistant_phase_survives_storage_and_the_wire() -> None:
    turn = t.Turn(
        input=(c.Message(c.Role.ASSISTANT, (c.TextPart("Working on it"),), phase="commentary"),),
        items=(t.TextItem("Done."),),
    )
    assert codec.turn_from_json(codec.turn_to_json(turn)) == turn
    wire = convert.turn_to_pb(turn)
    assert wire.input[0].phase == "commentary"
    assert convert.turn_from_pb(wire) == turn
