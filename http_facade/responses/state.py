"""The state machine that turns the core's turn events into Responses stream
events and the response object (:class:`ResponseState`). No I/O.

The stream and the final object come from the same calls, so they always
agree: answer text becomes ``message`` items, thinking ``reasoning`` items
(with summary events), each tool call Claude Code ran an ``mcp_call`` item
(``server_label: "claude_code"``: already executed, nothing for the client to
do) and each call of a client tool a ``function_call`` / ``custom_tool_call``
item, in the order the agent produced them. Files the turn changed are in the
``claude_code`` extension object.

A message's ``phase`` is known only when it closes: text a tool call follows
(or more thinking, which means the agent works on) is ``commentary``, text the
turn ends on is ``final_answer``. So ``response.output_item.added`` carries no
``phase`` (the spec makes it optional, never null); ``output_item.done``, the
final object and GET carry it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc.aio

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from http_facade.errors import ApiError
from http_facade.turns import TurnRecord

from .echo import Echo
from .outcome import FINAL_EVENT, error_dict, incomplete_details, status_of, usage_dict
from .protocol import PREFIX, SERVER_LABEL

COMMENTARY = "commentary"
FINAL_ANSWER = "final_answer"

Event = dict[str, Any]


@dataclass
class ResponseState(TurnRecord):
    """One response being built from the core's turn events.

    Every ``on_*`` method returns the stream events for what happened; the same
    calls build :meth:`response`. Items are ``message``, ``reasoning`` and
    ``mcp_call``; only one message or reasoning item is open at a time, tool
    calls stay open until their result.
    """

    echo: Echo
    id: str = ""
    created_at: int = field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    status: str = "in_progress"
    output: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    seq: int = 0
    _open: int | None = None  # index of the open message/reasoning item
    _texts: dict[int, list[str]] = field(default_factory=dict)
    _tools: dict[str, int] = field(default_factory=dict)  # tool_use_id -> index
    _calls: dict[str, int] = field(default_factory=dict)  # client call_id -> index

    def _ev(self, type: str, **fields: Any) -> Event:
        ev = {"type": type, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    # --- lifecycle -------------------------------------------------------------------

    def start(self, started: events_pb2.TurnStarted, requested_model: str) -> list[Event]:
        self.begin(started, requested_model)
        self.id = PREFIX + started.turn_id
        if started.created_at:
            self.created_at = int(started.created_at)
        snapshot = self.response()
        return [
            self._ev("response.created", response=snapshot),
            self._ev("response.in_progress", response=snapshot),
        ]

    def on_event(self, ev: agent_pb2.RunTurnResponse) -> list[Event]:
        kind = ev.WhichOneof("event")
        if kind == "text_delta":
            return self.on_text(ev.text_delta.text)
        if kind == "reasoning_delta":
            return self.on_reasoning(ev.reasoning_delta.text)
        if kind == "tool_use":
            return self.on_tool_use(ev.tool_use)
        if kind == "tool_result":
            return self.on_tool_result(ev.tool_result)
        if kind == "tool_call_started":
            return self.on_call_started(ev.tool_call_started)
        if kind == "tool_call_delta":
            return self.on_call_delta(ev.tool_call_delta)
        if kind == "tool_call_done":
            return self.on_call_done(ev.tool_call_done.call)
        if kind == "completed":
            return self.on_completed(ev.completed)
        self.record(ev)
        return []

    def on_read(self, ev: object) -> list[Event]:
        """The events for what ``http_facade.turns.read_turn`` gave once the turn
        started (PING and GONE are the caller's): a failure fails the response,
        the call ending without ``completed`` leaves it incomplete."""
        if isinstance(ev, ApiError):
            return self.fail(ev)
        if ev is grpc.aio.EOF:
            return self.finish("incomplete")
        assert isinstance(ev, agent_pb2.RunTurnResponse), ev
        return self.on_event(ev)

    def on_completed(self, c: events_pb2.TurnCompleted) -> list[Event]:
        self.record_completed(c)
        events: list[Event] = []
        if c.text and not any(item["type"] == "message" for item in self.output):
            events += self.on_text(c.text)
        return events + self.finish(status_of(c.finish_reason))

    def finish(self, status: str) -> list[Event]:
        """Closes every item and ends the response with ``status``."""
        item_status = "completed" if status == "completed" else "incomplete"
        events = self._close(item_status, FINAL_ANSWER)
        for index in list(self._tools.values()):
            events += self._close_tool(index, "incomplete")
        self.status = status
        if status == "completed":
            self.completed_at = int(time.time())
        events.append(self._ev(FINAL_EVENT[status], response=self.response()))
        return events

    def fail(self, err: ApiError) -> list[Event]:
        self.error = error_dict(err)
        return self.finish("failed")

    # --- items -------------------------------------------------------------------------

    def _open_item(self, item: dict[str, Any]) -> tuple[int, Event]:
        index = len(self.output)
        self.output.append(item)
        return index, self._ev("response.output_item.added", output_index=index, item=_copy(item))

    def _open_of(self, kind: str) -> int | None:
        """The open item's index if it is a ``kind`` ("message", "reasoning") item."""
        index = self._open
        return index if index is not None and self.output[index]["type"] == kind else None

    def _open_text_item(self, item: dict[str, Any]) -> tuple[int, list[Event]]:
        """Closes the open item and opens ``item`` in its place, to collect text."""
        events = self._close("completed")
        index, added = self._open_item(item)
        self._open, self._texts[index] = index, []
        return index, [*events, added]

    def on_text(self, text: str) -> list[Event]:
        return self._collect(
            text,
            "message",
            self._open_message,
            "response.output_text.delta",
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def on_reasoning(self, text: str) -> list[Event]:
        return self._collect(
            text,
            "reasoning",
            self._open_reasoning,
            "response.reasoning_summary_text.delta",
            summary_index=0,
            delta=text,
        )

    def _collect(
        self,
        text: str,
        kind: str,
        open_new: Callable[[], tuple[int, list[Event]]],
        delta_event: str,
        **fields: Any,
    ) -> list[Event]:
        """Adds ``text`` to the open ``kind`` item (``open_new`` opens one when
        there is none) and tells it with a ``delta_event`` carrying ``fields``."""
        if not text:
            return []
        index = self._open_of(kind)
        events: list[Event] = []
        if index is None:
            index, events = open_new()
        self._texts[index].append(text)
        item_id = self.output[index]["id"]
        events.append(self._ev(delta_event, item_id=item_id, output_index=index, **fields))
        return events

    def _open_message(self) -> tuple[int, list[Event]]:
        item: dict[str, Any] = {
            "id": f"msg_{self.turn_id}_{len(self.output)}",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index, events = self._open_text_item(item)
        part = output_text("")
        item["content"].append(part)
        added = self._ev(
            "response.content_part.added",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=dict(part),
        )
        return index, [*events, added]

    def _open_reasoning(self) -> tuple[int, list[Event]]:
        item: dict[str, Any] = {
            "id": f"rs_{self.turn_id}_{len(self.output)}",
            "type": "reasoning",
            "summary": [],
        }
        index, events = self._open_text_item(item)
        added = self._ev(
            "response.reasoning_summary_part.added",
            item_id=item["id"],
            output_index=index,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        )
        return index, [*events, added]

    def _close(self, status: str, phase: str = COMMENTARY) -> list[Event]:
        """Closes the open message or reasoning item; a message gets ``phase``
        (``commentary`` unless the turn ends on it)."""
        index, self._open = self._open, None
        if index is None:
            return []
        item = self.output[index]
        text = "".join(self._texts.pop(index, []))
        if item["type"] == "message":
            part = output_text(text)
            item["content"] = [part]
            item["status"] = status
            item["phase"] = phase
            return [
                self._ev(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                ),
                self._ev(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                ),
                self._ev("response.output_item.done", output_index=index, item=_copy(item)),
            ]
        part = {"type": "summary_text", "text": text}
        item["summary"] = [part]
        return [
            self._ev(
                "response.reasoning_summary_text.done",
                item_id=item["id"],
                output_index=index,
                summary_index=0,
                text=text,
            ),
            self._ev(
                "response.reasoning_summary_part.done",
                item_id=item["id"],
                output_index=index,
                summary_index=0,
                part=dict(part),
            ),
            self._ev("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def on_tool_use(self, tu: events_pb2.ToolUse) -> list[Event]:
        events = self._close("completed")
        item: dict[str, Any] = {
            "id": f"mcp_{tu.id or len(self.output)}",
            "type": "mcp_call",
            "server_label": SERVER_LABEL,
            "name": tu.name or "tool",
            "arguments": "",
            "output": None,
            "error": None,
            "status": "in_progress",
            "approval_request_id": None,
        }
        index, added = self._open_item(item)
        self._tools[tu.id] = index
        arguments = tu.input_json or "{}"
        events += [
            added,
            self._ev("response.mcp_call.in_progress", item_id=item["id"], output_index=index),
            self._ev(
                "response.mcp_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            ),
            self._ev(
                "response.mcp_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=arguments,
            ),
        ]
        item["arguments"] = arguments
        return events

    def on_tool_result(self, tr: events_pb2.ToolResult) -> list[Event]:
        index = self._tools.get(tr.tool_use_id)
        if index is None:
            return []
        item = self.output[index]
        item["output"] = tr.output_excerpt
        if tr.is_error:
            item["error"] = {
                "type": "mcp_tool_execution_error",
                "content": [{"type": "text", "text": tr.output_excerpt}],
            }
            return self._close_tool(index, "failed")
        return self._close_tool(index, "completed")

    # --- client tool calls (function_call / custom_tool_call items) ---------------------

    def on_call_started(self, started: events_pb2.ClientToolCallStarted) -> list[Event]:
        events = self._close("completed")
        custom = started.kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM
        item: dict[str, Any] = {
            "id": ("ctc_" if custom else "fc_") + started.call_id,
            "type": "custom_tool_call" if custom else "function_call",
            "status": "in_progress",
            "call_id": started.call_id,
            "name": started.name,
            ("input" if custom else "arguments"): "",
        }
        index, added = self._open_item(item)
        self._calls[started.call_id] = index
        return [*events, added]

    def on_call_delta(self, delta: events_pb2.ClientToolCallDelta) -> list[Event]:
        index = self._calls.get(delta.call_id)
        if index is None or not delta.delta:
            return []
        item = self.output[index]
        custom = item["type"] == "custom_tool_call"
        item["input" if custom else "arguments"] += delta.delta
        kind = "custom_tool_call_input" if custom else "function_call_arguments"
        return [
            self._ev(
                f"response.{kind}.delta", item_id=item["id"], output_index=index, delta=delta.delta
            )
        ]

    def on_call_done(self, call: content_pb2.ClientToolCall) -> list[Event]:
        index = self._calls.pop(call.call_id, None)
        if index is None:  # replaying a stored turn: no started event came
            events = self.on_call_started(
                events_pb2.ClientToolCallStarted(
                    index=0, call_id=call.call_id, name=call.name, kind=call.kind
                )
            )
            index = self._calls.pop(call.call_id)
        else:
            events = []
        item = self.output[index]
        item["status"] = "completed"
        if item["type"] == "custom_tool_call":
            item["input"] = call.input
            done = self._ev(
                "response.custom_tool_call_input.done",
                item_id=item["id"],
                output_index=index,
                input=call.input,
            )
        else:
            item["arguments"] = call.arguments_json or "{}"
            done = self._ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call.name,
                arguments=item["arguments"],
            )
        if call.namespace:
            item["namespace"] = call.namespace
        return [
            *events,
            done,
            self._ev("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def _close_tool(self, index: int, status: str) -> list[Event]:
        item = self.output[index]
        self._tools = {k: v for k, v in self._tools.items() if v != index}
        item["status"] = status
        done = {
            "completed": "response.mcp_call.completed",
            "failed": "response.mcp_call.failed",
        }.get(status, "response.mcp_call.failed")
        return [
            self._ev(done, item_id=item["id"], output_index=index),
            self._ev("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    # --- the object ------------------------------------------------------------------

    def response(self) -> dict[str, Any]:
        e = self.echo
        final = self.status != "in_progress"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "status": self.status,
            "background": False,
            "error": self.error,
            "incomplete_details": incomplete_details(self.status),
            "instructions": e.instructions,
            "max_output_tokens": e.max_output_tokens,
            "max_tool_calls": None,
            "model": self.model,
            "output": [_copy(item) for item in self.output] if final else [],
            "parallel_tool_calls": e.parallel_tool_calls,
            "previous_response_id": e.previous_response_id,
            "reasoning": {"effort": e.reasoning_effort, "summary": e.reasoning_summary},
            "service_tier": e.service_tier,
            "store": e.store,
            "temperature": e.temperature,
            "top_p": e.top_p,
            "presence_penalty": e.presence_penalty,
            "frequency_penalty": e.frequency_penalty,
            "top_logprobs": e.top_logprobs,
            "text": {"format": dict(e.text_format), "verbosity": e.verbosity},
            "tool_choice": e.tool_choice,
            "tools": list(e.tools),
            "truncation": e.truncation,
            "usage": usage_dict(self.usage) if self.usage is not None and final else None,
            "user": e.user,
            "metadata": dict(e.metadata),
            "safety_identifier": e.safety_identifier,
            "prompt_cache_key": e.prompt_cache_key,
            "claude_code": self.claude_code(),
        }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key in ("content", "summary"):
        if key in out:
            out[key] = [dict(p) for p in out[key]]
    if isinstance(out.get("error"), dict):
        out["error"] = dict(out["error"])
    return out
