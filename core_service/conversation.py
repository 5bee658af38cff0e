"""How a request's messages become a Claude Code prompt.

System and developer messages (and `instructions`) are appended to Claude
Code's system prompt. The trailing user messages are the new turn. Anything
before them is history: when it matches a turn this key already had, that
session is resumed (Claude Code has the history in its transcript); when not,
it is written into the prompt as a faithful transcript.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from claudecode.v1 import content_pb2 as cpb
from core_service.errors import InvalidArgument

ROLE_NAMES = {cpb.ROLE_USER: "User", cpb.ROLE_ASSISTANT: "Assistant"}
SUPPORTED_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class TurnInput:
    system_append: str
    history: list[cpb.Message]
    # The new turn: trailing user messages, or trailing ROLE_TOOL messages
    # (client tool results for the calls the previous turn stopped for).
    prompt: list[cpb.Message]

    @property
    def tool_outputs(self) -> list[cpb.ClientToolOutput]:
        """The client tool results this turn brings, in order (empty for a user turn)."""
        return [
            part.tool_output
            for message in self.prompt
            if message.role == cpb.ROLE_TOOL
            for part in message.content
        ]


def message_text(message: cpb.Message) -> str:
    return "".join(part.text for part in message.content if part.WhichOneof("part") == "text")


def split(messages: Sequence[cpb.Message], instructions: str) -> TurnInput:
    system: list[str] = [instructions] if instructions.strip() else []
    dialogue: list[cpb.Message] = []
    for i, message in enumerate(messages):
        if message.role in (cpb.ROLE_SYSTEM, cpb.ROLE_DEVELOPER):
            if any(p.WhichOneof("part") != "text" for p in message.content):
                raise InvalidArgument(
                    "System and developer messages may only contain text.",
                    param=f"messages[{i}].content",
                )
            system.append(message_text(message))
        elif message.role in (cpb.ROLE_USER, cpb.ROLE_ASSISTANT, cpb.ROLE_TOOL):
            dialogue.append(message)
        else:
            raise InvalidArgument("Every message needs a role.", param=f"messages[{i}].role")
    cut = len(dialogue)
    # Tool results answer the calls of the turn before; a user message after
    # them makes them history (the model already saw or will be told of them).
    trailing = cpb.ROLE_TOOL if dialogue and dialogue[-1].role == cpb.ROLE_TOOL else cpb.ROLE_USER
    while cut > 0 and dialogue[cut - 1].role == trailing:
        cut -= 1
    prompt = dialogue[cut:]
    if not prompt:
        raise InvalidArgument(
            "The conversation must end with a user message or tool results.", param="messages"
        )
    if trailing == cpb.ROLE_TOOL:
        _check_tool_outputs(messages, prompt)
        return TurnInput("\n\n".join(system), dialogue[:cut], prompt)
    if not any(message_text(m).strip() or len(m.content) for m in prompt):
        raise InvalidArgument("The last user message is empty.", param="messages")
    for m_index, message in enumerate(prompt):
        for p_index, part in enumerate(message.content):
            if part.WhichOneof("part") == "image":
                _check_image(part.image, f"messages[{m_index}].content[{p_index}]")
    return TurnInput("\n\n".join(system), dialogue[:cut], prompt)


def _check_tool_outputs(messages: Sequence[cpb.Message], prompt: list[cpb.Message]) -> None:
    """Every trailing tool message holds results only, each naming a call, once."""
    first = len(messages) - len(prompt)
    seen: set[str] = set()
    duplicated: list[str] = []
    for m_index, message in enumerate(prompt, start=first):
        if not message.content:
            raise InvalidArgument("A tool message needs a result.", param=f"messages[{m_index}]")
        for p_index, part in enumerate(message.content):
            param = f"messages[{m_index}].content[{p_index}]"
            if part.WhichOneof("part") != "tool_output":
                raise InvalidArgument("Tool messages may only hold tool results.", param=param)
            call_id = part.tool_output.call_id
            if not call_id:
                continue  # a legacy function result: it answers the one pending call
            if call_id in seen:
                duplicated.append(call_id)
            seen.add(call_id)
    if duplicated:
        raise InvalidArgument(
            f"More than one result for tool call(s): {', '.join(duplicated)}.",
            param="messages",
            reason="duplicate_tool_results",
        )


def _check_image(image: cpb.Image, param: str) -> None:
    if image.url and not image.data:
        if not image.url.startswith("https://"):
            raise InvalidArgument("Image URLs must be https:// or data: URLs.", param=param)
        return
    if image.media_type not in SUPPORTED_IMAGE_TYPES:
        raise InvalidArgument(
            f"Unsupported image type '{image.media_type}'; use PNG, JPEG, GIF or WebP.",
            param=param,
        )


def _arguments_canon(arguments_json: str) -> str:
    """Arguments compared by value: clients re-serialise the JSON they got."""
    try:
        return json.dumps(json.loads(arguments_json), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments_json.strip()


def fingerprint(messages: Sequence[cpb.Message]) -> str:
    """A stable hash of a dialogue (user, assistant and tool messages only)."""
    canon: list[Any] = []
    for message in messages:
        if message.role not in ROLE_NAMES and message.role != cpb.ROLE_TOOL:
            continue
        parts: list[Any] = []
        for part in message.content:
            kind = part.WhichOneof("part")
            if kind == "text":
                parts.append(part.text.strip())
            elif kind == "tool_call":
                call = part.tool_call
                # No ids: a legacy `function_call` in resent history has none.
                parts.append(
                    [
                        "call",
                        call.name,
                        _arguments_canon(call.arguments_json),
                        call.input,
                    ]
                )
            elif kind == "tool_output":
                parts.append(["output", part.tool_output.output])
            else:
                parts.append(
                    hashlib.sha256(part.image.data).hexdigest()
                    if part.image.data
                    else part.image.url
                )
        canon.append([int(message.role), [p for p in parts if p]])
    return hashlib.sha256(json.dumps(canon, ensure_ascii=False).encode()).hexdigest()


def transcript_prompt(
    history: Sequence[cpb.Message], prompt: Sequence[cpb.Message]
) -> list[cpb.ContentPart]:
    """The new turn's content, preceded by earlier history written out in full."""
    parts: list[cpb.ContentPart] = []
    if history:
        lines = ["Earlier in this conversation (a transcript, oldest first):", ""]
        for message in history:
            lines.append(transcript_line(message))
            lines.append("")
        lines.append(
            "Now the results of those tool calls:"
            if prompt and prompt[0].role == cpb.ROLE_TOOL
            else "Now the user says:"
        )
        parts.append(cpb.ContentPart(text="\n".join(lines)))
        for message in history:
            parts.extend(p for p in message.content if p.WhichOneof("part") == "image")
    for message in prompt:
        if message.role == cpb.ROLE_TOOL:
            parts.append(cpb.ContentPart(text=transcript_line(message)))
        else:
            parts.extend(message.content)
    return parts


def transcript_line(message: cpb.Message) -> str:
    """A message of earlier history as transcript text, tool calls and results included."""
    if message.role == cpb.ROLE_TOOL:
        return "\n".join(
            f"Tool result ({p.tool_output.call_id}){' (error)' if p.tool_output.is_error else ''}: "
            f"{p.tool_output.output}"
            for p in message.content
        )
    text = f"{ROLE_NAMES[message.role]}: {message_text(message)}"
    calls = [
        f"[called tool {p.tool_call.name} ({p.tool_call.call_id}) with "
        f"{p.tool_call.input or p.tool_call.arguments_json}]"
        for p in message.content
        if p.WhichOneof("part") == "tool_call"
    ]
    return "\n".join([text, *calls])


def sdk_content(parts: Sequence[cpb.ContentPart]) -> list[dict[str, Any]]:
    """Anthropic content blocks for the SDK's streaming input."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if part.WhichOneof("part") == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif part.WhichOneof("part") != "image":
            continue  # tool calls and results never go in as content blocks
        elif part.image.data:
            blocks.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": part.image.media_type,
                        "data": base64.b64encode(part.image.data).decode(),
                    },
                }
            )
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": part.image.url}})
    return blocks
