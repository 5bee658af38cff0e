"""Domain <-> claudecode.v1: the one place the core's own types (core_service/
domain/) meet the public proto.

Servicers call it to answer; the turn pipeline calls it where the stream
protocol (events built by core_service/agent/translate.py) becomes what a turn
stores. Enums map by name, so the domain's values need not follow the proto's
numbers; tests/unit/test_domain_convert.py holds every mapping to round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, TypeVar

from claudecode.v1 import admin_pb2 as apb
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from claudecode.v1 import sessions_pb2 as spb
from core_service.domain import content as c
from core_service.domain import turn as t
from core_service.domain.live_config import FIELDS as CONFIG_FIELDS
from core_service.domain.live_config import ConfigChange, LiveConfig
from core_service.domain.session import SessionRow

E = TypeVar("E", bound=StrEnum)


# Enums: FOO_BAR_STOP <-> Foo.STOP


def _enum_from_pb(kind: type[E], wrapper: Any, prefix: str, value: int) -> E:
    name: str = wrapper.Name(value)
    return kind[name.removeprefix(prefix)]


def _enum_to_pb(wrapper: Any, prefix: str, value: StrEnum) -> Any:
    return wrapper.Value(prefix + value.name)


def status_from_pb(value: pb.TurnStatus.ValueType) -> t.TurnStatus:
    return _enum_from_pb(t.TurnStatus, pb.TurnStatus, "TURN_STATUS_", value)


def status_to_pb(value: t.TurnStatus) -> pb.TurnStatus.ValueType:
    result: pb.TurnStatus.ValueType = _enum_to_pb(pb.TurnStatus, "TURN_STATUS_", value)
    return result


def finish_from_pb(value: ev.FinishReason.ValueType) -> t.FinishReason:
    return _enum_from_pb(t.FinishReason, ev.FinishReason, "FINISH_REASON_", value)


def finish_to_pb(value: t.FinishReason) -> ev.FinishReason.ValueType:
    result: ev.FinishReason.ValueType = _enum_to_pb(ev.FinishReason, "FINISH_REASON_", value)
    return result


def role_from_pb(value: cpb.Role.ValueType) -> c.Role:
    return _enum_from_pb(c.Role, cpb.Role, "ROLE_", value)


def role_to_pb(value: c.Role) -> cpb.Role.ValueType:
    result: cpb.Role.ValueType = _enum_to_pb(cpb.Role, "ROLE_", value)
    return result


def _tool_kind_from_pb(value: cpb.ClientToolKind.ValueType) -> c.ClientToolKind:
    return _enum_from_pb(c.ClientToolKind, cpb.ClientToolKind, "CLIENT_TOOL_KIND_", value)


def _tool_kind_to_pb(value: c.ClientToolKind) -> cpb.ClientToolKind.ValueType:
    result: cpb.ClientToolKind.ValueType = _enum_to_pb(
        cpb.ClientToolKind, "CLIENT_TOOL_KIND_", value
    )
    return result


# Content


def client_call_from_pb(m: cpb.ClientToolCall) -> c.ClientToolCall:
    return c.ClientToolCall(
        m.call_id,
        m.name,
        _tool_kind_from_pb(m.kind),
        m.arguments_json,
        m.input,
        m.item_id,
        m.namespace,
    )


def client_call_to_pb(d: c.ClientToolCall) -> cpb.ClientToolCall:
    return cpb.ClientToolCall(
        call_id=d.call_id,
        name=d.name,
        kind=_tool_kind_to_pb(d.kind),
        arguments_json=d.arguments_json,
        input=d.input,
        item_id=d.item_id,
        namespace=d.namespace,
    )


def client_output_from_pb(m: cpb.ClientToolOutput) -> c.ClientToolOutput:
    return c.ClientToolOutput(m.call_id, m.output, m.is_error, m.item_id)


def client_output_to_pb(d: c.ClientToolOutput) -> cpb.ClientToolOutput:
    return cpb.ClientToolOutput(
        call_id=d.call_id, output=d.output, is_error=d.is_error, item_id=d.item_id
    )


def part_from_pb(m: cpb.ContentPart) -> c.ContentPart:
    kind = m.WhichOneof("part")
    if kind == "text":
        return c.TextPart(m.text)
    if kind == "tool_call":
        return client_call_from_pb(m.tool_call)
    if kind == "tool_output":
        return client_output_from_pb(m.tool_output)
    if kind == "file":
        f = m.file
        return c.Attachment(f.filename, f.data, f.file_id, f.media_type)
    # An image, or a part with nothing set (never sent by our front ends),
    # which readers have always shown as an empty image.
    return c.Image(m.image.media_type, m.image.data, m.image.url)


def part_to_pb(d: c.ContentPart) -> cpb.ContentPart:
    if isinstance(d, c.TextPart):
        return cpb.ContentPart(text=d.text)
    if isinstance(d, c.Image):
        return cpb.ContentPart(image=cpb.Image(media_type=d.media_type, data=d.data, url=d.url))
    if isinstance(d, c.Attachment):
        return cpb.ContentPart(
            file=cpb.Attachment(
                filename=d.filename, data=d.data, file_id=d.file_id, media_type=d.media_type
            )
        )
    if isinstance(d, c.ClientToolCall):
        return cpb.ContentPart(tool_call=client_call_to_pb(d))
    return cpb.ContentPart(tool_output=client_output_to_pb(d))


def message_from_pb(m: cpb.Message) -> c.Message:
    return c.Message(
        role_from_pb(m.role), tuple(part_from_pb(p) for p in m.content), m.name, m.phase
    )


def message_to_pb(d: c.Message) -> cpb.Message:
    return cpb.Message(
        role=role_to_pb(d.role),
        content=[part_to_pb(p) for p in d.content],
        name=d.name,
        phase=d.phase,
    )


def client_tool_from_pb(m: cpb.ClientTool) -> c.ClientTool:
    fmt = m.format
    return c.ClientTool(
        m.name,
        m.description,
        m.parameters_json,
        m.strict,
        _tool_kind_from_pb(m.kind),
        c.CustomToolFormat(fmt.type, fmt.syntax, fmt.definition) if m.HasField("format") else None,
        m.namespace,
    )


def client_tool_to_pb(d: c.ClientTool) -> cpb.ClientTool:
    tool = cpb.ClientTool(
        name=d.name,
        description=d.description,
        parameters_json=d.parameters_json,
        strict=d.strict,
        kind=_tool_kind_to_pb(d.kind),
        namespace=d.namespace,
    )
    if d.format is not None:
        tool.format.CopyFrom(
            cpb.CustomToolFormat(
                type=d.format.type, syntax=d.format.syntax, definition=d.format.definition
            )
        )
    return tool


# Turn parts


def usage_from_pb(m: ev.Usage) -> t.Usage:
    return t.Usage(
        m.input_tokens,
        m.output_tokens,
        m.cache_read_input_tokens,
        m.cache_creation_input_tokens,
        m.cost_usd,
        m.reasoning_tokens,
    )


def usage_to_pb(d: t.Usage) -> ev.Usage:
    return ev.Usage(
        input_tokens=d.input_tokens,
        output_tokens=d.output_tokens,
        cache_read_input_tokens=d.cache_read_input_tokens,
        cache_creation_input_tokens=d.cache_creation_input_tokens,
        cost_usd=d.cost_usd,
        reasoning_tokens=d.reasoning_tokens,
    )


def tool_use_from_pb(m: ev.ToolUse) -> t.ToolUse:
    return t.ToolUse(m.id, m.name, m.input_json, m.summary)


def tool_use_to_pb(d: t.ToolUse) -> ev.ToolUse:
    return ev.ToolUse(id=d.id, name=d.name, input_json=d.input_json, summary=d.summary)


def tool_result_from_pb(m: ev.ToolResult) -> t.ToolResult:
    return t.ToolResult(m.tool_use_id, m.is_error, m.output_excerpt, m.truncated)


def tool_result_to_pb(d: t.ToolResult) -> ev.ToolResult:
    return ev.ToolResult(
        tool_use_id=d.tool_use_id,
        is_error=d.is_error,
        output_excerpt=d.output_excerpt,
        truncated=d.truncated,
    )


def file_from_pb(m: ev.FileChange) -> t.FileChange:
    kind = _enum_from_pb(t.FileChangeKind, ev.FileChangeKind, "FILE_CHANGE_KIND_", m.kind)
    return t.FileChange(kind, m.path, m.size_bytes, m.binary, m.diff, m.diff_truncated)


def file_to_pb(d: t.FileChange) -> ev.FileChange:
    return ev.FileChange(
        kind=_enum_to_pb(ev.FileChangeKind, "FILE_CHANGE_KIND_", d.kind),
        path=d.path,
        size_bytes=d.size_bytes,
        binary=d.binary,
        diff=d.diff,
        diff_truncated=d.diff_truncated,
    )


def error_from_pb(m: ev.TurnFailed) -> t.TurnError:
    return t.TurnError(m.code, m.message, m.reason, m.retry_after_seconds)


def error_to_pb(d: t.TurnError) -> ev.TurnFailed:
    return ev.TurnFailed(
        code=d.code, message=d.message, reason=d.reason, retry_after_seconds=d.retry_after_seconds
    )


def item_from_pb(m: pb.TurnItem) -> t.TurnItem | None:
    kind = m.WhichOneof("item")
    if kind == "text":
        return t.TextItem(m.text)
    if kind == "reasoning":
        return t.ReasoningItem(m.reasoning)
    if kind == "tool_use":
        return tool_use_from_pb(m.tool_use)
    if kind == "tool_result":
        return tool_result_from_pb(m.tool_result)
    if kind == "client_tool_call":
        return client_call_from_pb(m.client_tool_call)
    if kind == "client_tool_output":
        return client_output_from_pb(m.client_tool_output)
    return None  # an empty item (never written) says nothing


def items_from_pb(items: Iterable[pb.TurnItem]) -> tuple[t.TurnItem, ...]:
    return tuple(i for i in map(item_from_pb, items) if i is not None)


def item_to_pb(d: t.TurnItem) -> pb.TurnItem:
    if isinstance(d, t.TextItem):
        return pb.TurnItem(text=d.text)
    if isinstance(d, t.ReasoningItem):
        return pb.TurnItem(reasoning=d.text)
    if isinstance(d, t.ToolUse):
        return pb.TurnItem(tool_use=tool_use_to_pb(d))
    if isinstance(d, t.ToolResult):
        return pb.TurnItem(tool_result=tool_result_to_pb(d))
    if isinstance(d, c.ClientToolCall):
        return pb.TurnItem(client_tool_call=client_call_to_pb(d))
    return pb.TurnItem(client_tool_output=client_output_to_pb(d))


def options_from_pb(m: pb.TurnOptions) -> t.TurnOptions:
    return t.TurnOptions(
        m.max_output_tokens,
        m.reasoning_effort,
        tuple(m.stop),
        m.user,
        m.temperature if m.HasField("temperature") else None,
        m.top_p if m.HasField("top_p") else None,
        m.presence_penalty if m.HasField("presence_penalty") else None,
        m.frequency_penalty if m.HasField("frequency_penalty") else None,
    )


def options_to_pb(d: t.TurnOptions) -> pb.TurnOptions:
    return pb.TurnOptions(
        max_output_tokens=d.max_output_tokens,
        reasoning_effort=d.reasoning_effort,
        stop=list(d.stop),
        user=d.user,
        temperature=d.temperature,
        top_p=d.top_p,
        presence_penalty=d.presence_penalty,
        frequency_penalty=d.frequency_penalty,
    )


def output_format_from_pb(m: pb.OutputFormat) -> t.OutputFormat:
    kind = _enum_from_pb(t.OutputFormatKind, pb.OutputFormatKind, "OUTPUT_FORMAT_KIND_", m.kind)
    return t.OutputFormat(kind, m.name, m.description, m.schema_json, m.strict)


def output_format_to_pb(d: t.OutputFormat) -> pb.OutputFormat:
    return pb.OutputFormat(
        kind=_enum_to_pb(pb.OutputFormatKind, "OUTPUT_FORMAT_KIND_", d.kind),
        name=d.name,
        description=d.description,
        schema_json=d.schema_json,
        strict=d.strict,
    )


# Turn


def turn_from_pb(m: pb.Turn) -> t.Turn:
    return t.Turn(
        id=m.id,
        session_id=m.session_id,
        parent_turn_id=m.parent_turn_id,
        model=m.model,
        status=status_from_pb(m.status),
        created_at=m.created_at,
        completed_at=m.completed_at,
        input=tuple(message_from_pb(x) for x in m.input),
        instructions=m.instructions,
        output_text=m.output_text,
        reasoning=m.reasoning,
        tool_uses=tuple(tool_use_from_pb(x) for x in m.tool_uses),
        tool_results=tuple(tool_result_from_pb(x) for x in m.tool_results),
        files=tuple(file_from_pb(x) for x in m.files),
        usage=usage_from_pb(m.usage) if m.HasField("usage") else None,
        finish_reason=finish_from_pb(m.finish_reason),
        error=error_from_pb(m.error) if m.HasField("error") else None,
        metadata=dict(m.metadata),
        options=options_from_pb(m.options) if m.HasField("options") else None,
        items=items_from_pb(m.items),
        client_tools=tuple(client_tool_from_pb(x) for x in m.client_tools),
        client_tool_calls=tuple(client_call_from_pb(x) for x in m.client_tool_calls),
        output_format=output_format_from_pb(m.output_format)
        if m.HasField("output_format")
        else None,
        background=m.background,
    )


def turn_to_pb(d: t.Turn) -> pb.Turn:
    m = pb.Turn(
        id=d.id,
        session_id=d.session_id,
        parent_turn_id=d.parent_turn_id,
        model=d.model,
        status=status_to_pb(d.status),
        created_at=d.created_at,
        completed_at=d.completed_at,
        input=[message_to_pb(x) for x in d.input],
        instructions=d.instructions,
        output_text=d.output_text,
        reasoning=d.reasoning,
        tool_uses=[tool_use_to_pb(x) for x in d.tool_uses],
        tool_results=[tool_result_to_pb(x) for x in d.tool_results],
        files=[file_to_pb(x) for x in d.files],
        finish_reason=finish_to_pb(d.finish_reason),
        metadata=dict(d.metadata),
        items=[item_to_pb(x) for x in d.items],
        client_tools=[client_tool_to_pb(x) for x in d.client_tools],
        client_tool_calls=[client_call_to_pb(x) for x in d.client_tool_calls],
        background=d.background,
    )
    if d.usage is not None:
        m.usage.CopyFrom(usage_to_pb(d.usage))
    if d.error is not None:
        m.error.CopyFrom(error_to_pb(d.error))
    if d.options is not None:
        m.options.CopyFrom(options_to_pb(d.options))
    if d.output_format is not None:
        m.output_format.CopyFrom(output_format_to_pb(d.output_format))
    return m


# Sessions


def session_to_pb(row: SessionRow, live: set[str]) -> spb.Session:
    return spb.Session(
        id=row.id,
        model=row.model,
        created_at=row.created_at,
        last_active_at=row.last_active_at,
        turn_count=row.turn_count,
        last_turn_id=row.last_turn_id or "",
        forked_from=row.forked_from or "",
        usage=ev.Usage(
            input_tokens=row.input_tokens, output_tokens=row.output_tokens, cost_usd=row.cost_usd
        ),
        live=row.id in live,
    )


# Live configuration


def live_config_from_pb(m: apb.LiveConfig) -> LiveConfig:
    values: dict[str, Any] = {name: getattr(m, name) for name in CONFIG_FIELDS}
    values["model_aliases"] = dict(m.model_aliases)
    values["default_allowed_tools"] = tuple(m.default_allowed_tools)
    values["cors_origins"] = tuple(m.cors_origins)
    return LiveConfig(**values)


def live_config_to_pb(d: LiveConfig) -> apb.LiveConfig:
    return apb.LiveConfig(
        model_aliases=dict(d.model_aliases),
        default_allowed_tools=list(d.default_allowed_tools),
        cors_origins=list(d.cors_origins),
        **{
            name: getattr(d, name)
            for name in CONFIG_FIELDS
            if name not in ("model_aliases", "default_allowed_tools", "cors_origins")
        },
    )


def config_change_to_pb(d: ConfigChange) -> apb.ConfigChange:
    return apb.ConfigChange(
        version=d.version,
        updated_by=d.updated_by,
        updated_at=d.updated_at,
        changed_fields=list(d.changed_fields),
        config=live_config_to_pb(d.config),
    )
