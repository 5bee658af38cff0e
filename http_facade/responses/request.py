"""Responses API requests -> claudecode.v1: validation, input items as messages,
the RunTurnRequest. Pure functions; no I/O.

Assistant messages keep the ``phase`` the client gave them (``commentary`` or
``final_answer``) so stored input shows it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claudecode.v1 import agent_pb2, content_pb2
from http_facade import file_summary
from http_facade.attachments import attachment_part
from http_facade.errors import ApiError, invalid_request, unsupported
from http_facade.inputs import ROLES, image_from_url, reasoning_effort, validate_body
from http_facade.structured_output import responses_output_format
from http_facade.tool_calls import ToolRequest, builtin_choice, responses_tools, with_tools

from .protocol import (
    PREFIX,
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


def check_text_and_items(body: Mapping[str, Any]) -> None:
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
    return validate_body(body, ResponseCreateRequest, UNSUPPORTED, check_text_and_items)


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
    call = content_pb2.ClientToolCall(
        call_id=item.call_id,
        name=item.name,
        item_id=item.id or "",
        namespace=item.namespace or "",
    )
    if isinstance(item, CustomToolCallInput):
        call.kind, call.input = content_pb2.CLIENT_TOOL_KIND_CUSTOM, item.input
    else:
        call.kind, call.arguments_json = content_pb2.CLIENT_TOOL_KIND_FUNCTION, item.arguments
    return content_pb2.ContentPart(tool_call=call)


def _has_text(message: content_pb2.Message) -> bool:
    return any(part.WhichOneof("part") == "text" for part in message.content)


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

    def assistant(phase: str = "") -> content_pb2.Message:
        # An answer's message and its calls are one assistant message, as the
        # core stored it (so resent history is recognised). A message of
        # another phase after text starts a new one, so each keeps its phase.
        last = out[-1] if out else None
        if (
            last is None
            or last.role != content_pb2.ROLE_ASSISTANT
            or (phase and last.phase != phase and _has_text(last))
        ):
            out.append(content_pb2.Message(role=ROLES["assistant"], phase=phase))
        elif phase and not last.phase:
            last.phase = phase
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
            assistant(item.phase or "").content.extend(_assistant_parts(item))
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
            # Echoed only (GET shows what was sent): Claude Code has no such knobs.
            temperature=req.temperature,
            top_p=req.top_p,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
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


def run_turn_request_of(
    body: Mapping[str, Any], *, request_id: str, builtin_header: str | None
) -> tuple[ResponseCreateRequest, agent_pb2.RunTurnRequest]:
    """A create body (POST or a WebSocket ``response.create``) checked, and its
    RunTurnRequest with the client's tools and the built-in tools it asked for
    (``builtin_header``: the value of the BUILTIN_TOOLS_HEADER)."""
    create = validate_request(body)
    run = to_run_turn_request(
        create,
        request_id=request_id,
        tools=responses_tools(body),
        builtin=builtin_tools_of(create, builtin_header),
    )
    return create, run


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
