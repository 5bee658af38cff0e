"""What a RunTurn request's client-tool fields mean for its turn: validated
(INVALID_ARGUMENT naming the field), the process shape that offers them, and
the note that asks the model for what Claude Code cannot enforce.

Claude Code has no `tool_choice`: the model is offered the tools and asked,
in a short note after the prompt, to call one ("required"), a named one, or
at most one per message (`parallel_tool_calls: false`). `none` offers no
client tools at all that turn. `allowed_names` narrows the offered set.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Sequence

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from core_service.agent.client_tools import ClientToolSet
from core_service.agent.options import ProcessShape
from core_service.agent.permissions import ALLOWED_BY_DEFAULT
from core_service.errors import InvalidArgument

# RunTurnRequest.hosted_tools names and the Claude Code built-ins they turn on.
# Not `tool_search`: with ToolSearch on, Claude Code defers the client's own
# tools behind a search and the model no longer sees them (Codex sends it on
# every turn), so it is accepted and ignored.
HOSTED_BUILTINS = {"web_search": "WebSearch"}

NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOLS = 128


def offered_tools(request: pb.RunTurnRequest) -> list[cpb.ClientTool]:
    """The request's tools the model sees this turn (validated)."""
    tools = list(request.tools)
    if len(tools) > MAX_TOOLS:
        raise InvalidArgument(f"At most {MAX_TOOLS} tools are allowed.", param="tools")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not NAME_RULE.match(tool.name):
            raise InvalidArgument(
                f"Invalid tool name '{tool.name}': it must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                param=f"tools[{i}].name",
            )
        if tool.name in seen:
            raise InvalidArgument(f"Duplicate tool name '{tool.name}'.", param=f"tools[{i}].name")
        seen.add(tool.name)
        if tool.parameters_json:
            try:
                schema = json.loads(tool.parameters_json)
            except ValueError:
                schema = None
            if not isinstance(schema, dict) or schema.get("type", "object") != "object":
                raise InvalidArgument(
                    "Tool parameters must be a JSON Schema object.",
                    param=f"tools[{i}].parameters",
                )
    choice = request.tool_choice
    for name in [choice.name] if choice.mode == cpb.TOOL_CHOICE_MODE_NAMED else []:
        if name not in seen:
            raise InvalidArgument(
                f"tool_choice names '{name}', which is not in tools.", param="tool_choice"
            )
    for name in choice.allowed_names:
        if name not in seen:
            raise InvalidArgument(
                f"tool_choice allows '{name}', which is not in tools.", param="tool_choice"
            )
    if request.HasField("tool_choice") and not tools:
        raise InvalidArgument("tool_choice needs tools.", param="tool_choice")
    if choice.mode == cpb.TOOL_CHOICE_MODE_NONE:
        return []
    if choice.allowed_names:
        allowed = set(choice.allowed_names)
        tools = [t for t in tools if t.name in allowed]
    return tools


def with_client_tools(
    shape: ProcessShape,
    request: pb.RunTurnRequest,
    allowed: tuple[str, ...] | None,
    key_default: bool | tuple[str, ...] = False,
) -> ProcessShape:
    """The shape of a process that offers the request's tools (unchanged without).
    `key_default` is the key's built-ins beside them when the request does not say."""
    tools = offered_tools(request)
    if not tools:
        if request.HasField("builtin_tools") and not request.tools:
            raise InvalidArgument("builtin_tools needs tools.", param="builtin_tools")
        return shape
    policy = set(ALLOWED_BY_DEFAULT if allowed is None else allowed) & ALLOWED_BY_DEFAULT
    builtin: bool | tuple[str, ...] = False
    if not request.HasField("builtin_tools"):
        # The key's default, narrowed quietly to what its policy allows now
        # (the service's default tools can change after the key was made).
        builtin = key_default if isinstance(key_default, bool) else _within(key_default, policy)
    elif request.builtin_tools.all:
        builtin = True
    elif request.builtin_tools.names:
        refused = [n for n in request.builtin_tools.names if n not in policy]
        if refused:
            raise InvalidArgument(
                f"Built-in tool(s) not allowed for this key: {', '.join(refused)}.",
                param="builtin_tools",
            )
        builtin = tuple(request.builtin_tools.names)
    builtin = with_hosted(builtin, request.hosted_tools, policy)
    tool_set = ClientToolSet.from_request(tools)
    return dataclasses.replace(
        shape,
        client_tools=tool_set,
        client_tools_key=tool_set.fingerprint(),
        builtin_tools=builtin,
    )


def _within(names: Sequence[str], policy: Collection[str]) -> bool | tuple[str, ...]:
    kept = tuple(n for n in names if n in policy)
    return kept or False


def with_hosted(
    builtin: bool | tuple[str, ...], hosted: Sequence[str], policy: Collection[str]
) -> bool | tuple[str, ...]:
    """`builtin` plus the built-ins the request's hosted tools map to, those
    the key's policy allows; a hosted tool the policy excludes (or nothing maps
    to) is accepted and ignored, as OpenAI-shaped clients send them by habit."""
    if builtin is True:
        return True
    wanted = [HOSTED_BUILTINS[h] for h in hosted if h in HOSTED_BUILTINS]
    extra = [n for n in wanted if n in policy and n not in (builtin or ())]
    if not extra:
        return builtin
    return (*(builtin or ()), *dict.fromkeys(extra))


def choice_note(request: pb.RunTurnRequest) -> str:
    """A note after the prompt for what the client asked of the model's tool use."""
    if not offered_tools(request):
        return ""
    notes: list[str] = []
    choice = request.tool_choice
    if choice.mode == cpb.TOOL_CHOICE_MODE_REQUIRED:
        notes.append("Answer by calling at least one of the tools.")
    elif choice.mode == cpb.TOOL_CHOICE_MODE_NAMED:
        notes.append(f"Answer by calling the tool `{choice.name}`.")
    if request.HasField("parallel_tool_calls") and not request.parallel_tool_calls:
        notes.append("Call at most one tool at a time.")
    return " ".join(notes)
