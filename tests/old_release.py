"""Rows as the release before migration 0011 wrote them: claudecode.v1.Turn
serialized into turns.snapshot, live config as proto JSON. Used to check that
such a database upgrades and reads back exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from google.protobuf import json_format

from claudecode.v1 import admin_pb2, agent_pb2
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service.db.engine import make_engine

CREATED = 1_764_000_000
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _text(text: str) -> cpb.ContentPart:
    return cpb.ContentPart(text=text)


def _options(**kw: object) -> agent_pb2.TurnOptions:
    return agent_pb2.TurnOptions(**kw)  # type: ignore[arg-type]


def turns(session_id: str) -> list[agent_pb2.Turn]:
    """Realistic stored turns, one of each kind the core writes."""
    use = ev.ToolUse(
        id="toolu_1", name="Write", input_json='{"file_path": "a.txt"}', summary="a.txt"
    )
    result = ev.ToolResult(tool_use_id="toolu_1", output_excerpt="File created", truncated=True)
    usage = ev.Usage(
        input_tokens=120,
        output_tokens=45,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=30,
        cost_usd=0.0123,
        reasoning_tokens=7,
    )
    tools = agent_pb2.Turn(
        id="t_tools",
        session_id=session_id,
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=CREATED,
        completed_at=CREATED + 9,
        instructions="Be brief.",
        input=[
            cpb.Message(role=cpb.ROLE_SYSTEM, content=[_text("You write files.")]),
            cpb.Message(
                role=cpb.ROLE_USER,
                content=[
                    _text("Write a.txt, see the picture and the files"),
                    cpb.ContentPart(image=cpb.Image(media_type="image/png", data=PNG)),
                    cpb.ContentPart(image=cpb.Image(url="https://example.com/cat.jpg")),
                    cpb.ContentPart(
                        file=cpb.Attachment(
                            filename="notes.txt", data=b"hello\n", media_type="text/plain"
                        )
                    ),
                    cpb.ContentPart(file=cpb.Attachment(file_id="file-abc", filename="spec.pdf")),
                ],
                name="alice",
            ),
        ],
        output_text="Done: a.txt written.",
        reasoning="The user wants a file.",
        tool_uses=[use],
        tool_results=[result],
        files=[
            ev.FileChange(
                kind=ev.FILE_CHANGE_KIND_CREATED,
                path="a.txt",
                size_bytes=6,
                diff="+hello",
                diff_truncated=False,
            ),
            ev.FileChange(
                kind=ev.FILE_CHANGE_KIND_MODIFIED, path="img.bin", size_bytes=900, binary=True
            ),
        ],
        usage=usage,
        finish_reason=ev.FINISH_REASON_STOP,
        metadata={"project": "demo", "ticket": "42"},
        options=_options(
            max_output_tokens=800, reasoning_effort="high", stop=["END", "\n\n\n"], user="u-1"
        ),
        items=[
            agent_pb2.TurnItem(reasoning="The user wants a file."),
            agent_pb2.TurnItem(tool_use=use),
            agent_pb2.TurnItem(tool_result=result),
            agent_pb2.TurnItem(text="Done: a.txt written."),
        ],
    )
    call = cpb.ClientToolCall(
        call_id="call_1",
        name="get_weather",
        kind=cpb.CLIENT_TOOL_KIND_FUNCTION,
        arguments_json='{"city": "Oslo"}',
    )
    custom = cpb.ClientToolCall(
        call_id="call_2",
        name="apply_patch",
        kind=cpb.CLIENT_TOOL_KIND_CUSTOM,
        input="*** Begin Patch",
        item_id="ctc_9",
    )
    calls = agent_pb2.Turn(
        id="t_calls",
        session_id=session_id,
        parent_turn_id="t_tools",
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=CREATED + 20,
        completed_at=CREATED + 25,
        input=[cpb.Message(role=cpb.ROLE_USER, content=[_text("Weather in Oslo? Then patch.")])],
        output_text="Let me check.",
        usage=ev.Usage(input_tokens=50, output_tokens=20, cost_usd=0.002),
        finish_reason=ev.FINISH_REASON_TOOL_CALLS,
        options=_options(),
        client_tools=[
            cpb.ClientTool(
                name="get_weather",
                description="Weather of a city",
                parameters_json='{"type": "object", "properties": {"city": {"type": "string"}}}',
                strict=True,
                kind=cpb.CLIENT_TOOL_KIND_FUNCTION,
            ),
            cpb.ClientTool(
                name="apply_patch",
                kind=cpb.CLIENT_TOOL_KIND_CUSTOM,
                format=cpb.CustomToolFormat(
                    type="grammar", syntax="lark", definition="start: /.+/"
                ),
                namespace="tools",
            ),
        ],
        client_tool_calls=[call, custom],
        items=[
            agent_pb2.TurnItem(text="Let me check."),
            agent_pb2.TurnItem(client_tool_call=call),
            agent_pb2.TurnItem(client_tool_call=custom),
        ],
    )
    output = cpb.ClientToolOutput(call_id="call_1", output='{"temp": 3}', item_id="fco_1")
    failed_output = cpb.ClientToolOutput(call_id="call_2", output="patch failed", is_error=True)
    results = agent_pb2.Turn(
        id="t_results",
        session_id=session_id,
        parent_turn_id="t_calls",
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=CREATED + 30,
        completed_at=CREATED + 33,
        input=[
            cpb.Message(role=cpb.ROLE_USER, content=[_text("Weather in Oslo? Then patch.")]),
            cpb.Message(
                role=cpb.ROLE_ASSISTANT,
                content=[
                    _text("Let me check."),
                    cpb.ContentPart(tool_call=call),
                    cpb.ContentPart(tool_call=custom),
                ],
            ),
            cpb.Message(role=cpb.ROLE_TOOL, content=[cpb.ContentPart(tool_output=output)]),
            cpb.Message(role=cpb.ROLE_TOOL, content=[cpb.ContentPart(tool_output=failed_output)]),
        ],
        output_text="It is 3 degrees.",
        usage=ev.Usage(input_tokens=60, output_tokens=8, cost_usd=0.001),
        finish_reason=ev.FINISH_REASON_STOP,
        options=_options(),
        items=[
            agent_pb2.TurnItem(client_tool_output=output),
            agent_pb2.TurnItem(client_tool_output=failed_output),
            agent_pb2.TurnItem(text="It is 3 degrees."),
        ],
    )
    structured = agent_pb2.Turn(
        id="t_structured",
        session_id=session_id,
        model="claude-haiku-4-5",
        status=agent_pb2.TURN_STATUS_INCOMPLETE,
        created_at=CREATED + 40,
        completed_at=CREATED + 41,
        input=[
            cpb.Message(role=cpb.ROLE_DEVELOPER, content=[_text("JSON only")]),
            cpb.Message(role=cpb.ROLE_USER, content=[_text("A person")]),
        ],
        output_text='{"name": "Ada"',
        usage=ev.Usage(input_tokens=10, output_tokens=800),
        finish_reason=ev.FINISH_REASON_LENGTH,
        options=_options(max_output_tokens=800),
        output_format=agent_pb2.OutputFormat(
            kind=agent_pb2.OUTPUT_FORMAT_KIND_JSON_SCHEMA,
            name="person",
            description="A person",
            schema_json='{"type": "object", "properties": {"name": {"type": "string"}}}',
            strict=True,
        ),
        items=[agent_pb2.TurnItem(text='{"name": "Ada"')],
    )
    failed = agent_pb2.Turn(
        id="t_failed",
        session_id=session_id,
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_FAILED,
        created_at=CREATED + 50,
        completed_at=CREATED + 52,
        input=[cpb.Message(role=cpb.ROLE_USER, content=[_text("hello?")])],
        options=_options(user="u-2"),
        metadata={"try": "2"},
        error=ev.TurnFailed(
            code=14,
            message="The model is overloaded.",
            reason="model_overloaded",
            retry_after_seconds=30,
        ),
    )
    cancelled = agent_pb2.Turn(
        id="t_cancelled",
        session_id=session_id,
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_CANCELLED,
        created_at=CREATED + 80,
        completed_at=CREATED + 81,
        input=[cpb.Message(role=cpb.ROLE_USER, content=[_text("long task")])],
        output_text="Start",
        reasoning="thinking",
        usage=ev.Usage(input_tokens=5, output_tokens=1),
        finish_reason=ev.FINISH_REASON_CANCELLED,
        options=_options(),
        items=[agent_pb2.TurnItem(reasoning="thinking"), agent_pb2.TurnItem(text="Start")],
    )
    # Stored before the core kept items in order: readers fall back to the lists.
    legacy = agent_pb2.Turn(
        id="t_legacy",
        session_id=session_id,
        model="claude-sonnet-4-5",
        status=agent_pb2.TURN_STATUS_COMPLETED,
        created_at=CREATED + 70,
        completed_at=CREATED + 71,
        input=[cpb.Message(role=cpb.ROLE_USER, content=[_text("old")])],
        output_text="old answer",
        reasoning="old thought",
        tool_uses=[use],
        tool_results=[result],
        usage=usage,
        finish_reason=ev.FINISH_REASON_STOP,
    )
    return [tools, calls, results, structured, failed, legacy, cancelled]


def config_rows() -> list[tuple[int, str]]:
    """Live-config versions as proto JSON: zero values left out, int64 as strings."""
    first = admin_pb2.LiveConfig(
        model_aliases={"gpt-4o": "claude-sonnet-4-5"},
        default_allowed_tools=["Read", "Write"],
        log_level="info",
        cors_origins=["https://app.example"],
        max_body_bytes=10 * 1024 * 1024,
        log_retention_days=30,
        workspace_retention_days=30,
        pool_size=2,
        claude_max_retries=2,
        log_bodies=True,
        max_live_processes=8,
        max_running_turns=4,
        max_queued_turns=16,
        max_queue_wait_seconds=60,
        max_concurrent_starts=2,
        max_file_bytes=100 * 1024 * 1024,
        file_retention_days=30,
    )
    # An older shape: pool off, bodies off, no aliases (all left out of the JSON),
    # and none of the fields added later.
    second = admin_pb2.LiveConfig(
        log_level="debug",
        max_body_bytes=2048,
        log_retention_days=7,
        workspace_retention_days=7,
        max_queued_turns=0,
    )
    return [
        (1, json_format.MessageToJson(first, preserving_proto_field_name=True)),
        (2, json_format.MessageToJson(second, preserving_proto_field_name=True)),
    ]


def write(url: str, key_id: str, session_id: str) -> list[agent_pb2.Turn]:
    """Writes one session with `turns()` (the last one deleted by its owner:
    stored=false) and `config_rows()` into a database at revision 0010."""
    stored = turns(session_id)
    now = datetime.fromtimestamp(CREATED, UTC)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO sessions (id, key_id, workspace, home, model, created_at, "
                    "last_active_at, turn_count, input_tokens, output_tokens, cost_usd, deleted) "
                    "VALUES (:id, :key, 'ws-old', 'home-old', 'claude-sonnet-4-5', :now, :now, "
                    ":count, 0, 0, 0, false)"
                ),
                # Active now: the retention pass would remove an older one.
                {"id": session_id, "key": key_id, "now": datetime.now(UTC), "count": len(stored)},
            )
            for i, turn in enumerate(stored):
                conn.execute(
                    sa.text(
                        "INSERT INTO turns (id, session_id, key_id, parent_turn_id, status, "
                        "created_at, stored, snapshot) VALUES (:id, :session, :key, :parent, "
                        ":status, :created, :stored, :snapshot)"
                    ),
                    {
                        "id": turn.id,
                        "session": session_id,
                        "key": key_id,
                        "parent": turn.parent_turn_id or None,
                        "status": turn.status,
                        "created": datetime.fromtimestamp(turn.created_at, UTC),
                        "stored": i < len(stored) - 1,
                        "snapshot": turn.SerializeToString(),
                    },
                )
            for version, text in config_rows():
                conn.execute(
                    sa.text(
                        "INSERT INTO config_versions (version, config_json, changed_fields, "
                        "updated_by, updated_at) VALUES (:v, :j, '[]', 'admin', :now)"
                    ),
                    {"v": version, "j": text, "now": now},
                )
    finally:
        engine.dispose()
    return stored
