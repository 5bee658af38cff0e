"""Responses API <-> claudecode.v1, both directions. Pure functions and one state
machine (:class:`ResponseState`); no I/O.

The stream and the final object come from the same state machine, so they always
agree: answer text becomes ``message`` items, thinking ``reasoning`` items
(with summary events), and each tool call Claude Code ran an ``mcp_call`` item
(``server_label: "claude_code"``: already executed, nothing for the client to
do), in the order the agent produced them. Files the turn changed are in the
``claude_code`` extension object.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from claudecode.v1 import agent_pb2, content_pb2, events_pb2
from http_facade import file_summary
from http_facade.attachments import attachment_part
from http_facade.errors import ApiError, invalid_request, unsupported
from http_facade.inputs import ROLES, image_from_url, reasoning_effort, validate_body
from http_facade.structured_output import responses_output_format, text_format_of
from http_facade.tool_calls import ToolRequest, builtin_choice, with_tools
from http_facade.turns import TurnRecord, file_dict, turn_failed_error

from .protocol import (
    SERVER_LABEL,
    SUPPORTED_ITEM_TYPES,
    UNSUPPORTED,
    AssistantInput,
    CustomToolCallInput,
    FunctionCallInput,
    FunctionCallOutputInput,
    HostedCallInput,
    InputFile,
    InputImage,
    InputText,
    OutputText,
    Refusal,
    ResponseCreateRequest,
    SystemInput,
    UserInput,
)

ENDPOINT = "/v1/responses"
PREFIX = "resp_"

# --- request ---------------------------------------------------------------------------


def _check_text_and_items(body: Mapping[str, Any]) -> None:
    items = body.get("input")
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind not in SUPPORTED_ITEM_TYPES:
            raise unsupported(f"input[{i}].type", f"'{kind}' items")
        if kind == "compaction" and not isinstance(item.get("encrypted_content"), str):
            raise invalid_request(
                "compaction items need their encrypted_content.",
                f"input[{i}].encrypted_content",
                "missing_required_parameter",
            )
        if kind == "mcp_call" and item.get("server_label") != SERVER_LABEL:
            raise unsupported(f"input[{i}].server_label", "only this service's own mcp_call items")
        content = item.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "input_audio":
                raise unsupported(f"input[{i}].content[{j}].type", f"'{part['type']}' parts")
            if part.get("type") == "input_image" and part.get("file_id") is not None:
                raise unsupported(f"input[{i}].content[{j}].file_id", "use image_url")


def validate_request(body: Any) -> ResponseCreateRequest:
    """The request body as a model, or an ApiError (400) naming the param."""
    return validate_body(body, ResponseCreateRequest, UNSUPPORTED, _check_text_and_items)


def turn_id_of(response_id: str, param: str | None = None) -> str:
    """The core's turn id in ``resp_<turn id>``; a 400 (param given) or 404 otherwise."""
    if response_id.startswith(PREFIX) and len(response_id) > len(PREFIX):
        return response_id[len(PREFIX) :]
    if param is not None:
        raise invalid_request(
            f"Invalid '{param}': '{response_id}'. Expected an ID that begins with 'resp'.",
            param,
            "invalid_value",
        )
    raise not_found(response_id)


def not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.", code="not_found")


def for_responses(err: ApiError, response_id: str | None = None) -> ApiError:
    """The core names its own fields in errors; this API's clients know others."""
    if err.param == "previous_turn_id":
        err.param = "previous_response_id"
        if err.status == 404 and response_id:
            err.message = f"Previous response with id '{response_id}' not found."
    elif err.param == "turn_id":
        err.param = None
        if err.status == 404 and response_id:
            err.message = f"Response with id '{response_id}' not found."
    elif err.param and err.param.startswith("messages"):
        # The core names chat's shape; a Responses input_file holds the fields itself.
        err.param = "input" + err.param[len("messages") :].replace("].file.", "].", 1)
    return err


def _text(text: str) -> content_pb2.ContentPart:
    return content_pb2.ContentPart(text=text)


def _user_parts(item: UserInput, i: int) -> list[content_pb2.ContentPart]:
    if isinstance(item.content, str):
        return [_text(item.content)]
    parts: list[content_pb2.ContentPart] = []
    for j, part in enumerate(item.content):
        if isinstance(part, InputText):
            parts.append(_text(part.text))
        elif isinstance(part, InputImage):
            param = f"input[{i}].content[{j}].image_url"
            if not part.image_url:
                raise invalid_request(
                    "input_image parts need an image_url.", param, "missing_required_parameter"
                )
            parts.append(content_pb2.ContentPart(image=image_from_url(part.image_url, param)))
        elif isinstance(part, InputFile):
            parts.append(
                attachment_part(
                    file_data=part.file_data,
                    file_id=part.file_id,
                    filename=part.filename,
                    file_url=part.file_url,
                    param=f"input[{i}].content[{j}]",
                )
            )
    return parts


def _assistant_parts(item: AssistantInput) -> list[content_pb2.ContentPart]:
    # A client keeping the conversation itself resends our answers; they carry
    # no facade additions, but strip a chat file summary all the same.
    if isinstance(item.content, str):
        return [_text(file_summary.remove(item.content))]
    parts: list[content_pb2.ContentPart] = []
    for part in item.content:
        if isinstance(part, OutputText | InputText):
            parts.append(_text(file_summary.remove(part.text)))
        elif isinstance(part, Refusal):
            parts.append(_text(part.refusal))
    return parts


def _output_text_of(output: str | list[Any]) -> str:
    """A function_call_output's `output`: text, or the text of its parts."""
    if isinstance(output, str):
        return output
    texts = [p.get("text", "") for p in output if isinstance(p, dict)]
    return "".join(t for t in texts if isinstance(t, str))


def _call_part(item: FunctionCallInput | CustomToolCallInput) -> content_pb2.ContentPart:
    if isinstance(item, CustomToolCallInput):
        call = content_pb2.ClientToolCall(
            call_id=item.call_id,
            name=item.name,
            kind=content_pb2.CLIENT_TOOL_KIND_CUSTOM,
            input=item.input,
            item_id=item.id or "",
            namespace=item.namespace or "",
        )
    else:
        call = content_pb2.ClientToolCall(
            call_id=item.call_id,
            name=item.name,
            kind=content_pb2.CLIENT_TOOL_KIND_FUNCTION,
            arguments_json=item.arguments,
            item_id=item.id or "",
            namespace=item.namespace or "",
        )
    return content_pb2.ContentPart(tool_call=call)


def compaction_of(req: ResponseCreateRequest) -> tuple[str, int]:
    """The last compaction item's token and the index of the first item after it
    (what came before is in the compacted state); ("", 0) without one."""
    if isinstance(req.input, str):
        return "", 0
    for i in range(len(req.input) - 1, -1, -1):
        item = req.input[i]
        if isinstance(item, HostedCallInput) and item.type == "compaction":
            return str((item.model_extra or {})["encrypted_content"]), i + 1
    return "", 0


def _messages(req: ResponseCreateRequest, start: int = 0) -> list[content_pb2.Message]:
    if isinstance(req.input, str):
        return [content_pb2.Message(role=content_pb2.ROLE_USER, content=[_text(req.input)])]
    out: list[content_pb2.Message] = []

    def assistant() -> content_pb2.Message:
        # An answer's message and its calls are one assistant message, as the
        # core stored it (so resent history is recognised).
        if not out or out[-1].role != content_pb2.ROLE_ASSISTANT:
            out.append(content_pb2.Message(role=ROLES["assistant"]))
        return out[-1]

    for i, item in enumerate(req.input):
        if i < start:
            continue
        if isinstance(item, UserInput):
            out.append(content_pb2.Message(role=ROLES["user"], content=_user_parts(item, i)))
        elif isinstance(item, SystemInput):
            content = (
                item.content
                if isinstance(item.content, str)
                else "".join(p.text for p in item.content)
            )
            out.append(content_pb2.Message(role=ROLES[item.role], content=[_text(content)]))
        elif isinstance(item, AssistantInput):
            assistant().content.extend(_assistant_parts(item))
        elif isinstance(item, FunctionCallInput | CustomToolCallInput):
            assistant().content.append(_call_part(item))
        elif isinstance(item, FunctionCallOutputInput):
            result = content_pb2.ClientToolOutput(
                call_id=item.call_id, output=_output_text_of(item.output), item_id=item.id or ""
            )
            out.append(
                content_pb2.Message(
                    role=content_pb2.ROLE_TOOL,
                    content=[content_pb2.ContentPart(tool_output=result)],
                )
            )
        # reasoning and mcp_call items: our own output, already in the session;
        # hosted tools' items: nothing ran them here.
    return out


def to_run_turn_request(
    req: ResponseCreateRequest,
    *,
    request_id: str,
    tools: ToolRequest | None = None,
    builtin: content_pb2.BuiltinTools | None = None,
) -> agent_pb2.RunTurnRequest:
    """The RunTurnRequest for a validated create request."""
    previous = ""
    if req.previous_response_id is not None:
        previous = turn_id_of(req.previous_response_id, "previous_response_id")
    effort = req.reasoning.effort if req.reasoning is not None else None
    compaction, start = compaction_of(req)
    if compaction and previous:
        raise invalid_request(
            "A compaction item starts a new chain: send it without previous_response_id.",
            "previous_response_id",
            "invalid_value",
        )
    run = agent_pb2.RunTurnRequest(
        model=req.model or "",
        messages=_messages(req, start),
        compaction=compaction,
        instructions=req.instructions or "",
        previous_turn_id=previous,
        store=req.store is not False,
        metadata=dict(req.metadata or {}),
        options=agent_pb2.TurnOptions(
            max_output_tokens=req.max_output_tokens or 0,
            reasoning_effort=reasoning_effort(effort),
            user=req.user or "",
        ),
        origin=agent_pb2.RequestOrigin(
            endpoint=ENDPOINT, request_id=request_id, client_stream=bool(req.stream)
        ),
        output_format=responses_output_format(
            req.text.format if req.text is not None else None,
            req.input if isinstance(req.input, str) else [i.model_dump() for i in req.input],
            req.instructions,
        ),
    )
    return with_tools(run, tools or ToolRequest(), builtin)


def builtin_tools_of(
    req: ResponseCreateRequest, header: str | None
) -> content_pb2.BuiltinTools | None:
    """The extension `claude_code.builtin_tools`, or the X-Claude-Code-Builtin-Tools header."""
    wanted = (req.claude_code or {}).get("builtin_tools")
    if wanted is not None and not (
        isinstance(wanted, bool)
        or (isinstance(wanted, list) and all(isinstance(n, str) for n in wanted))
    ):
        raise invalid_request(
            "claude_code.builtin_tools must be true, false or a list of tool names.",
            "claude_code.builtin_tools",
            "invalid_value",
        )
    return builtin_choice(wanted, header)


# --- the response object -----------------------------------------------------------------


@dataclass(frozen=True)
class Echo:
    """Request parameters a response object repeats back."""

    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    store: bool = True
    temperature: float | None = None
    top_p: float | None = None
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    reasoning_effort: str | None = None
    reasoning_summary: str | None = None
    truncation: str = "disabled"
    verbosity: str = "medium"
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    service_tier: str = "default"
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    tools: tuple[Any, ...] = ()

    @classmethod
    def of_request(cls, req: ResponseCreateRequest) -> Echo:
        reasoning = req.reasoning
        return cls(
            tools=tuple(req.tools or ()),
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            previous_response_id=req.previous_response_id,
            store=req.store is not False,
            temperature=req.temperature,
            top_p=req.top_p,
            tool_choice=req.tool_choice or "auto",
            parallel_tool_calls=req.parallel_tool_calls is not False,
            metadata=dict(req.metadata or {}),
            user=req.user,
            reasoning_effort=reasoning.effort if reasoning else None,
            reasoning_summary=(reasoning.summary or reasoning.generate_summary)
            if reasoning
            else None,
            truncation=req.truncation or "disabled",
            verbosity=(req.text.verbosity if req.text and req.text.verbosity else "medium"),
            text_format=dict(req.text.format) if req.text and req.text.format else {"type": "text"},
            service_tier="default",
            safety_identifier=req.safety_identifier,
            prompt_cache_key=req.prompt_cache_key,
        )

    @classmethod
    def of_turn(cls, turn: agent_pb2.Turn) -> Echo:
        return cls(
            instructions=turn.instructions or None,
            max_output_tokens=turn.options.max_output_tokens or None,
            previous_response_id=PREFIX + turn.parent_turn_id if turn.parent_turn_id else None,
            store=True,
            metadata=dict(turn.metadata),
            user=turn.options.user or None,
            reasoning_effort=turn.options.reasoning_effort or None,
            text_format=text_format_of(turn.output_format),
        )


def usage_dict(u: events_pb2.Usage) -> dict[str, Any]:
    """Responses usage from Claude Code's own numbers (never estimated)."""
    prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_input_tokens,
            "cache_write_tokens": u.cache_creation_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": prompt + u.output_tokens,
    }


# ResponseError.code is an enumeration in OpenAI's spec; ours map onto it.
_ERROR_CODES = {
    "rate_limit_exceeded",
    "invalid_image",
    "invalid_image_format",
    "invalid_base64_image",
    "invalid_image_url",
    "image_too_large",
}


def error_dict(err: ApiError) -> dict[str, Any]:
    """An ApiError as the response object's ``error``."""
    if err.code in _ERROR_CODES:
        code = str(err.code)
    elif err.status == 429:
        code = "rate_limit_exceeded"
    else:
        code = "server_error"
    return {"code": code, "message": err.message}


_INCOMPLETE = {
    events_pb2.FINISH_REASON_LENGTH,
    events_pb2.FINISH_REASON_MAX_TURNS,
    events_pb2.FINISH_REASON_BUDGET,
}

# Terminal status -> the stream's last event.
FINAL_EVENT = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "cancelled": "response.incomplete",
    "failed": "response.failed",
}


def status_of(finish: events_pb2.FinishReason.ValueType) -> str:
    if finish == events_pb2.FINISH_REASON_CANCELLED:
        return "cancelled"
    if finish in _INCOMPLETE:
        return "incomplete"
    return "completed"


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

    def on_completed(self, c: events_pb2.TurnCompleted) -> list[Event]:
        self.record_completed(c)
        events: list[Event] = []
        if c.text and not any(item["type"] == "message" for item in self.output):
            events += self.on_text(c.text)
        return events + self.finish(status_of(c.finish_reason))

    def finish(self, status: str) -> list[Event]:
        """Closes every item and ends the response with ``status``."""
        item_status = "completed" if status == "completed" else "incomplete"
        events = self._close(item_status)
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
        if not text:
            return []
        events: list[Event] = []
        index = self._open_of("message")
        if index is None:
            item: dict[str, Any] = {
                "id": f"msg_{self.turn_id}_{len(self.output)}",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            index, events = self._open_text_item(item)
            part = _output_text("")
            item["content"].append(part)
            events.append(
                self._ev(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                )
            )
        self._texts[index].append(text)
        events.append(
            self._ev(
                "response.output_text.delta",
                item_id=self.output[index]["id"],
                output_index=index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def on_reasoning(self, text: str) -> list[Event]:
        if not text:
            return []
        events: list[Event] = []
        index = self._open_of("reasoning")
        if index is None:
            item: dict[str, Any] = {
                "id": f"rs_{self.turn_id}_{len(self.output)}",
                "type": "reasoning",
                "summary": [],
            }
            index, events = self._open_text_item(item)
            events.append(
                self._ev(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        self._texts[index].append(text)
        events.append(
            self._ev(
                "response.reasoning_summary_text.delta",
                item_id=self.output[index]["id"],
                output_index=index,
                summary_index=0,
                delta=text,
            )
        )
        return events

    def _close(self, status: str) -> list[Event]:
        index, self._open = self._open, None
        if index is None:
            return []
        item = self.output[index]
        text = "".join(self._texts.pop(index, []))
        if item["type"] == "message":
            part = _output_text(text)
            item["content"] = [part]
            item["status"] = status
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
        incomplete = None
        if self.status == "incomplete":
            incomplete = {"reason": "max_output_tokens"}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "status": self.status,
            "background": False,
            "error": self.error,
            "incomplete_details": incomplete,
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
            "text": {"format": dict(e.text_format), "verbosity": e.verbosity},
            "tool_choice": e.tool_choice,
            "tools": list(e.tools),
            "top_logprobs": 0,
            "top_p": e.top_p,
            "truncation": e.truncation,
            "usage": usage_dict(self.usage) if self.usage is not None and final else None,
            "user": e.user,
            "metadata": dict(e.metadata),
            "safety_identifier": e.safety_identifier,
            "prompt_cache_key": e.prompt_cache_key,
            "claude_code": self.claude_code(),
        }


def _input_file(f: content_pb2.Attachment) -> dict[str, Any]:
    if f.file_id:
        return {"type": "input_file", "file_id": f.file_id, "filename": f.filename or None}
    data = base64.b64encode(f.data).decode()
    mime = f.media_type or "application/octet-stream"
    return {"type": "input_file", "file_data": f"data:{mime};base64,{data}", "filename": f.filename}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key in ("content", "summary"):
        if key in out:
            out[key] = [dict(p) for p in out[key]]
    if isinstance(out.get("error"), dict):
        out["error"] = dict(out["error"])
    return out


# --- stored turns -------------------------------------------------------------------------

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
    """The messages the request carried, as input items, oldest first."""
    items: list[dict[str, Any]] = []
    for i, msg in enumerate(turn.input):
        content: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for j, part in enumerate(msg.content):
            kind = part.WhichOneof("part")
            if kind in ("tool_call", "tool_output"):
                calls.append(_tool_item(part, f"{turn.id}_in{i}_{j}"))
                continue
            if kind == "text":
                content.append({"type": "input_text", "text": part.text})
            elif part.WhichOneof("part") == "file":
                content.append(_input_file(part.file))
            else:
                img = part.image
                url = img.url or (
                    f"data:{img.media_type};base64,{base64.b64encode(img.data).decode()}"
                )
                content.append(
                    {"type": "input_image", "image_url": url, "detail": "auto", "file_id": None}
                )
        role = {
            content_pb2.ROLE_ASSISTANT: "assistant",
            content_pb2.ROLE_SYSTEM: "system",
            content_pb2.ROLE_DEVELOPER: "developer",
        }.get(msg.role, "user")
        if calls and not content:
            items += calls
            continue
        items.append(
            {
                "id": f"msg_{turn.id}_in{i}",
                "type": "message",
                "role": role,
                "status": "completed",
                "content": content,
            }
        )
        items += calls
    return items


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
    if call.kind == content_pb2.CLIENT_TOOL_KIND_CUSTOM:
        return {
            "id": call.item_id or f"ctc_{call.call_id}",
            "type": "custom_tool_call",
            "call_id": call.call_id,
            "name": call.name,
            "input": call.input,
            "status": "completed",
        }
    return {
        "id": call.item_id or f"fc_{call.call_id}",
        "type": "function_call",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments_json,
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
