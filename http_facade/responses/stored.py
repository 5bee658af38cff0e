"""Stored turns as Responses objects: GET and cancel (:func:`from_turn`) and the
input items page (:func:`input_items`, :func:`page`).
"""

from __future__ import annotations

import base64
from typing import Any

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from http_facade.errors import invalid_request
from http_facade.turns import file_dict, turn_failed_error

from .echo import Echo
from .outcome import error_dict
from .state import ResponseState, output_text

_TURN_STATUS = {
    agent_pb2.TURN_STATUS_COMPLETED: "completed",
    agent_pb2.TURN_STATUS_FAILED: "failed",
    agent_pb2.TURN_STATUS_CANCELLED: "cancelled",
    agent_pb2.TURN_STATUS_INCOMPLETE: "incomplete",
}


def from_turn(turn: agent_pb2.Turn) -> dict[str, Any]:
    """A stored turn as a response object (GET, cancel).

    The core keeps the turn's output items in order, so replaying them gives
    the same output the stream had. Turns stored before the core kept that
    order come back as thinking, then tool calls, then text.
    """
    state = ResponseState(echo=Echo.of_turn(turn))
    state.start(
        events_pb2.TurnStarted(
            session_id=turn.session_id,
            turn_id=turn.id,
            model=turn.model,
            created_at=turn.created_at,
        ),
        "",
    )
    status = _TURN_STATUS.get(turn.status)
    if status is None:  # still running: the core has no output for it yet
        return state.response()
    if turn.items:
        for item in turn.items:
            kind = item.WhichOneof("item")
            if kind == "text":
                state.on_text(item.text)
            elif kind == "reasoning":
                state.on_reasoning(item.reasoning)
            elif kind == "tool_use":
                state.on_tool_use(item.tool_use)
            elif kind == "tool_result":
                state.on_tool_result(item.tool_result)
            elif kind == "client_tool_call":
                state.on_call_done(item.client_tool_call)
    else:
        state.on_reasoning(turn.reasoning)
        results = {r.tool_use_id: r for r in turn.tool_results}
        for tu in turn.tool_uses:
            state.on_tool_use(tu)
            if tu.id in results:
                state.on_tool_result(results[tu.id])
        state.on_text(turn.output_text)
    for f in turn.files:
        state.files[f.path] = file_dict(f)
    if turn.HasField("usage"):
        state.usage = turn.usage
    if status == "failed":
        state.error = error_dict(turn_failed_error(turn.error))
    state.finish(status)
    if turn.completed_at and status == "completed":
        state.completed_at = int(turn.completed_at)
    return state.response()


def input_items(turn: agent_pb2.Turn) -> list[dict[str, Any]]:
    """The messages the request carried, as input items, oldest first.

    Assistant messages come back as the spec's output messages (``output_text``
    parts) with the ``phase`` the client gave them.
    """
    items: list[dict[str, Any]] = []
    for i, msg in enumerate(turn.input):
        assistant = msg.role == content_pb2.ROLE_ASSISTANT
        content: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for j, part in enumerate(msg.content):
            kind = part.WhichOneof("part")
            if kind in ("tool_call", "tool_output"):
                calls.append(_tool_item(part, f"{turn.id}_in{i}_{j}"))
            elif kind == "text":
                content.append(
                    output_text(part.text)
                    if assistant
                    else {"type": "input_text", "text": part.text}
                )
            elif kind == "file":
                content.append(_input_file(part.file))
            else:
                img = part.image
                url = img.url or (
                    f"data:{img.media_type};base64,{base64.b64encode(img.data).decode()}"
                )
                content.append(
                    {"type": "input_image", "image_url": url, "detail": "auto", "file_id": None}
                )
        if calls and not content:
            items += calls
            continue
        item: dict[str, Any] = {
            "id": f"msg_{turn.id}_in{i}",
            "type": "message",
            "role": _ROLES.get(msg.role, "user"),
            "status": "completed",
            "content": content,
        }
        if assistant and msg.phase:
            item["phase"] = msg.phase
        items.append(item)
        items += calls
    return items


_ROLES = {
    content_pb2.ROLE_ASSISTANT: "assistant",
    content_pb2.ROLE_SYSTEM: "system",
    content_pb2.ROLE_DEVELOPER: "developer",
}


def _tool_item(part: content_pb2.ContentPart, fallback_id: str) -> dict[str, Any]:
    """A call or result of a client tool as the input item the client sent."""
    if part.WhichOneof("part") == "tool_output":
        out = part.tool_output
        return {
            "id": out.item_id or f"fco_{fallback_id}",
            "type": "function_call_output",
            "call_id": out.call_id,
            "output": out.output,
            "status": "completed",
        }
    call = part.tool_call
    custom = call.kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM
    return {
        "id": call.item_id or ("ctc_" if custom else "fc_") + call.call_id,
        "type": "custom_tool_call" if custom else "function_call",
        "call_id": call.call_id,
        "name": call.name,
        **({"input": call.input} if custom else {"arguments": call.arguments_json}),
        "status": "completed",
    }


def page(
    items: list[dict[str, Any]], *, limit: int, order: str, after: str | None
) -> dict[str, Any]:
    """OpenAI's cursor page of input items."""
    ordered = list(reversed(items)) if order == "desc" else list(items)
    if after:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise invalid_request(
                f"No input item '{after}' in this response.", "after", "invalid_value"
            )
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


def _input_file(f: content_pb2.Attachment) -> dict[str, Any]:
    if f.file_id:
        return {"type": "input_file", "file_id": f.file_id, "filename": f.filename or None}
    data = base64.b64encode(f.data).decode()
    mime = f.media_type or "application/octet-stream"
    return {"type": "input_file", "file_data": f"data:{mime};base64,{data}", "filename": f.filename}
