"""A request's own tools (OpenAI function calling), checked and turned into
`claudecode.v1` messages. Pure functions, no I/O.

Chat Completions and the Responses API spell the same things differently:

- chat `tools`: `{"type": "function", "function": {name, description,
  parameters, strict}}` and `{"type": "custom", "custom": {name, description,
  format}}`; the legacy `functions` list holds bare function definitions.
- Responses `tools`: the same fields flat (`{"type": "function", "name": ...}`),
  plus `namespace` (functions grouped under a name, as Codex sends them; the
  model sees each function under its own name) and OpenAI's hosted tools.
- `tool_choice`: "none" | "auto" | "required", a named function or custom
  tool, or `allowed_tools` (a mode and a subset of the tools); the legacy
  `function_call` is "none" | "auto" | {"name": ...}.

Hosted tools: `web_search` (and `web_search_preview`) and `tool_search` are
passed on as wishes for Claude Code's own web search and deferred tool
loading, which the core honours where the key's tool policy allows. Hosted
tools nothing maps to (file search, computer use, code interpreter, image
generation, remote MCP, local shell) are accepted and listed in
`ToolRequest.ignored`, so the caller can say so, rather than failing a whole
Codex request; an unknown tool type is refused.

Every refusal is a 400 naming the parameter, worded like OpenAI's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from claudecode.v1 import agent_pb2
from claudecode.v1 import content_pb2 as cpb
from http_facade.errors import ApiError, invalid_request, unsupported

# OpenAI's limits on tools.
MAX_TOOLS = 128
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Hosted tool types passed on to the core under these names.
HOSTED_AS = {
    "web_search": "web_search",
    "web_search_preview": "web_search",
    "web_search_preview_2025_03_11": "web_search",
    "web_search_2025_08_26": "web_search",
    "tool_search": "tool_search",
}
# Hosted tool types accepted and ignored (nothing in Claude Code maps to them).
IGNORED_HOSTED = frozenset(
    {
        "file_search",
        "computer",
        "computer_use",
        "computer_use_preview",
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "programmatic_tool_calling",
    }
)
_MODES: dict[str, cpb.ToolChoiceMode.ValueType] = {
    "none": cpb.TOOL_CHOICE_MODE_NONE,
    "auto": cpb.TOOL_CHOICE_MODE_AUTO,
    "required": cpb.TOOL_CHOICE_MODE_REQUIRED,
}


@dataclass(frozen=True)
class ToolRequest:
    """What a request asked for, ready for RunTurnRequest."""

    tools: tuple[cpb.ClientTool, ...] = ()
    # None: not given (auto).
    choice: cpb.ToolChoice | None = None
    # None: not given (true).
    parallel_tool_calls: bool | None = None
    # Hosted tools to pass on, by the core's name: "web_search", "tool_search".
    hosted: tuple[str, ...] = ()
    # Hosted tool types accepted and ignored, as the client named them.
    ignored: tuple[str, ...] = ()
    # Per-tool fields accepted and ignored ("tools[0].defer_loading", ...).
    ignored_fields: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tools)


# --- shared checks ------------------------------------------------------------------


def check_name(name: Any, param: str) -> str:
    """A tool name OpenAI would accept."""
    if not isinstance(name, str) or not name:
        raise invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if len(name) > 64:
        raise invalid_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            param,
            "string_above_max_length",
        )
    if not NAME_RE.match(name):
        raise invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string that "
            f"matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param,
            "invalid_value",
        )
    return name


def parameters_json(schema: Any, name: str, param: str) -> str:
    """A function's `parameters` as the JSON text passed to the model.

    Absent, null or `{}` means no arguments. Otherwise it must be a JSON Schema
    object: a JSON object whose `type` is "object", with `properties` an
    object and `required` a list of names when given.
    """
    if schema is None or schema == {}:
        return ""
    prefix = f"Invalid schema for function '{name}'"
    if not isinstance(schema, dict):
        raise invalid_request(
            f"{prefix}: {json.dumps(schema)} is not of type 'object'.",
            param,
            "invalid_function_parameters",
        )
    if schema.get("type") != "object":
        got = json.dumps(schema.get("type"))
        raise invalid_request(
            f"{prefix}: schema must be a JSON Schema of 'type: \"object\"', got 'type: {got}'.",
            param,
            "invalid_function_parameters",
        )
    if "properties" in schema and not isinstance(schema["properties"], dict):
        raise invalid_request(
            f"{prefix}: 'properties' must be an object.", param, "invalid_function_parameters"
        )
    required = schema.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise invalid_request(
            f"{prefix}: 'required' must be a list of property names.",
            param,
            "invalid_function_parameters",
        )
    # Key order and numbers as the client wrote them: json.loads kept both.
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def _optional_str(value: Any, param: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_request(
            f"Invalid type for '{param}': expected a string.", param, "invalid_type"
        )
    return value


def _optional_bool(value: Any, param: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise invalid_request(f"Invalid type for '{param}': expected a boolean.", param, "invalid_type")


def _object(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise invalid_request(
            f"Invalid type for '{param}': expected an object.", param, "invalid_type"
        )
    return value


def _list(value: Any, param: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise invalid_request(
            f"Invalid type for '{param}': expected an array.", param, "invalid_type"
        )
    return value


def function_tool(
    name: Any, description: Any, parameters: Any, strict: Any, param: str, namespace: str = ""
) -> cpb.ClientTool:
    """One function tool; `param` is where its fields live ("tools[0].function")."""
    checked = check_name(name, f"{param}.name")
    return cpb.ClientTool(
        name=checked,
        description=_optional_str(description, f"{param}.description"),
        parameters_json=parameters_json(parameters, checked, f"{param}.parameters"),
        strict=bool(_optional_bool(strict, f"{param}.strict")),
        kind=cpb.CLIENT_TOOL_KIND_FUNCTION,
        namespace=namespace,
    )


def custom_format(value: Any, param: str, *, nested_grammar: bool) -> cpb.CustomToolFormat | None:
    """A custom tool's `format`: text, or a lark/regex grammar.

    Chat nests the grammar (`{"type": "grammar", "grammar": {syntax, definition}}`),
    Responses does not (`{"type": "grammar", "syntax": ..., "definition": ...}`).
    """
    if value is None:
        return None
    fmt = _object(value, param)
    kind = fmt.get("type")
    if kind == "text":
        return cpb.CustomToolFormat(type="text")
    if kind != "grammar":
        raise invalid_request(
            f"Invalid value for '{param}.type': expected 'text' or 'grammar'.",
            f"{param}.type",
            "invalid_value",
        )
    where = f"{param}.grammar" if nested_grammar else param
    grammar = _object(fmt.get("grammar"), where) if nested_grammar else fmt
    syntax = grammar.get("syntax")
    if syntax not in ("lark", "regex"):
        raise invalid_request(
            f"Invalid value for '{where}.syntax': expected 'lark' or 'regex'.",
            f"{where}.syntax",
            "invalid_value",
        )
    definition = grammar.get("definition")
    if not isinstance(definition, str) or not definition:
        raise invalid_request(
            f"Missing required parameter: '{where}.definition'.",
            f"{where}.definition",
            "missing_required_parameter",
        )
    return cpb.CustomToolFormat(type="grammar", syntax=syntax, definition=definition)


def custom_tool(
    name: Any,
    description: Any,
    fmt: cpb.CustomToolFormat | None,
    param: str,
    namespace: str = "",
) -> cpb.ClientTool:
    tool = cpb.ClientTool(
        name=check_name(name, f"{param}.name"),
        description=_optional_str(description, f"{param}.description"),
        kind=cpb.CLIENT_TOOL_KIND_CUSTOM,
        namespace=namespace,
    )
    if fmt is not None:
        tool.format.CopyFrom(fmt)
    return tool


def check_unique(tools: Sequence[tuple[cpb.ClientTool, str]]) -> None:
    """Claude Code needs one tool per name; `tools` pairs each with its param path."""
    seen: dict[str, str] = {}
    for tool, param in tools:
        if tool.name in seen:
            raise invalid_request(
                f"Invalid '{param}.name': the tool name '{tool.name}' is also used by "
                f"'{seen[tool.name]}'; tool names must be unique.",
                f"{param}.name",
                "duplicate_tool_name",
            )
        seen[tool.name] = param


def check_count(count: int, param: str = "tools") -> None:
    if count > MAX_TOOLS:
        raise invalid_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_TOOLS}, but got an array with length {count} instead.",
            param,
            "array_above_max_length",
        )


def _named(
    name: Any, tools: Sequence[cpb.ClientTool], kind: cpb.ClientToolKind.ValueType, param: str
) -> str:
    if not isinstance(name, str) or not name:
        raise invalid_request(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if not any(t.name == name and t.kind == kind for t in tools):
        raise invalid_request(
            f"Invalid value for 'tool_choice': tool choice '{name}' not found in 'tools' "
            "parameter.",
            "tool_choice",
            "invalid_value",
        )
    return name


def _check_choice_needs_tools(value: Any, tools: Sequence[Any], param: str) -> None:
    # "none" and "auto" without tools are harmless (and clients send them); the rest name tools.
    if value is not None and value not in ("none", "auto") and not tools:
        raise invalid_request(
            f"Invalid value for '{param}': '{param}' is only allowed when 'tools' are specified.",
            param,
            "invalid_value",
        )


def _mode(value: Any, param: str) -> cpb.ToolChoiceMode.ValueType:
    if value not in _MODES:
        raise invalid_request(
            f"Invalid value for '{param}': expected one of 'none', 'auto' or 'required'.",
            param,
            "invalid_value",
        )
    return _MODES[value]


# --- Chat Completions -----------------------------------------------------------------


def chat_tools(body: Mapping[str, Any]) -> ToolRequest:
    """`tools`, `tool_choice`, `functions`, `function_call` and `parallel_tool_calls`
    of a chat completion request."""
    parallel = _optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    raw_tools, raw_functions = body.get("tools"), body.get("functions")
    if raw_tools and raw_functions:
        raise invalid_request(
            "Use either 'tools' or the deprecated 'functions', not both.",
            "functions",
            "invalid_value",
        )
    if body.get("tool_choice") is not None and body.get("function_call") is not None:
        raise invalid_request(
            "Use either 'tool_choice' or the deprecated 'function_call', not both.",
            "function_call",
            "invalid_value",
        )
    if raw_functions:
        tools = _legacy_functions(raw_functions)
        return ToolRequest(
            tuple(tools), _legacy_function_call(body.get("function_call"), tools), parallel
        )

    placed: list[tuple[cpb.ClientTool, str]] = []
    items = _list(raw_tools, "tools") if raw_tools is not None else []
    check_count(len(items))
    for i, item in enumerate(items):
        param = f"tools[{i}]"
        tool = _object(item, param)
        kind = tool.get("type")
        if kind == "function":
            fn = _object(tool.get("function"), f"{param}.function")
            placed.append(
                (
                    function_tool(
                        fn.get("name"),
                        fn.get("description"),
                        fn.get("parameters"),
                        fn.get("strict"),
                        f"{param}.function",
                    ),
                    f"{param}.function",
                )
            )
        elif kind == "custom":
            custom = _object(tool.get("custom"), f"{param}.custom")
            fmt = custom_format(custom.get("format"), f"{param}.custom.format", nested_grammar=True)
            placed.append(
                (
                    custom_tool(
                        custom.get("name"), custom.get("description"), fmt, f"{param}.custom"
                    ),
                    f"{param}.custom",
                )
            )
        else:
            raise invalid_request(
                f"Invalid value for '{param}.type': expected 'function' or 'custom'.",
                f"{param}.type",
                "invalid_value",
            )
    check_unique(placed)
    tools = [t for t, _ in placed]
    _check_choice_needs_tools(body.get("function_call"), tools, "function_call")
    _check_choice_needs_tools(body.get("tool_choice"), tools, "tool_choice")
    return ToolRequest(tuple(tools), _chat_tool_choice(body.get("tool_choice"), tools), parallel)


def _legacy_functions(raw: Any) -> list[cpb.ClientTool]:
    items = _list(raw, "functions")
    check_count(len(items), "functions")
    placed = []
    for i, item in enumerate(items):
        fn = _object(item, f"functions[{i}]")
        placed.append(
            (
                function_tool(
                    fn.get("name"),
                    fn.get("description"),
                    fn.get("parameters"),
                    None,
                    f"functions[{i}]",
                ),
                f"functions[{i}]",
            )
        )
    check_unique(placed)
    return [t for t, _ in placed]


def _legacy_function_call(value: Any, tools: Sequence[cpb.ClientTool]) -> cpb.ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("none", "auto"):
            raise invalid_request(
                "Invalid value for 'function_call': expected 'none', 'auto' or {\"name\": ...}.",
                "function_call",
                "invalid_value",
            )
        return cpb.ToolChoice(mode=_MODES[value])
    named = _object(value, "function_call")
    name = _named(named.get("name"), tools, cpb.CLIENT_TOOL_KIND_FUNCTION, "function_call.name")
    return cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name=name)


def _chat_tool_choice(value: Any, tools: Sequence[cpb.ClientTool]) -> cpb.ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        return cpb.ToolChoice(mode=_mode(value, "tool_choice"))
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        fn = _object(choice.get("function"), "tool_choice.function")
        name = _named(
            fn.get("name"), tools, cpb.CLIENT_TOOL_KIND_FUNCTION, "tool_choice.function.name"
        )
        return cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name=name)
    if kind == "custom":
        custom = _object(choice.get("custom"), "tool_choice.custom")
        name = _named(
            custom.get("name"), tools, cpb.CLIENT_TOOL_KIND_CUSTOM, "tool_choice.custom.name"
        )
        return cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name=name)
    if kind == "allowed_tools":
        allowed = _object(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            raise invalid_request(
                "Invalid value for 'tool_choice.allowed_tools.mode': expected 'auto' or "
                "'required'.",
                "tool_choice.allowed_tools.mode",
                "invalid_value",
            )
        names = []
        entries = _list(allowed.get("tools"), "tool_choice.allowed_tools.tools")
        for i, entry in enumerate(entries):
            param = f"tool_choice.allowed_tools.tools[{i}]"
            item = _object(entry, param)
            item_kind = item.get("type")
            if item_kind not in ("function", "custom"):
                raise invalid_request(
                    f"Invalid value for '{param}.type': expected 'function' or 'custom'.",
                    f"{param}.type",
                    "invalid_value",
                )
            inner = _object(item.get(item_kind), f"{param}.{item_kind}")
            wanted = _KINDS[item_kind]
            names.append(_named(inner.get("name"), tools, wanted, f"{param}.{item_kind}.name"))
        return cpb.ToolChoice(mode=_MODES[mode], allowed_names=names)
    raise invalid_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object "
        "of type 'function', 'custom' or 'allowed_tools'.",
        "tool_choice",
        "invalid_value",
    )


_KINDS: dict[str, cpb.ClientToolKind.ValueType] = {
    "function": cpb.CLIENT_TOOL_KIND_FUNCTION,
    "custom": cpb.CLIENT_TOOL_KIND_CUSTOM,
}

# --- Responses API ----------------------------------------------------------------------

# Fields of function and custom tools that change nothing here.
_IGNORED_TOOL_FIELDS = ("defer_loading", "allowed_callers", "output_schema", "async")


def responses_tools(body: Mapping[str, Any]) -> ToolRequest:
    """`tools`, `tool_choice` and `parallel_tool_calls` of a Responses request."""
    parallel = _optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    raw = body.get("tools")
    items = _list(raw, "tools") if raw is not None else []
    placed: list[tuple[cpb.ClientTool, str]] = []
    hosted: list[str] = []
    ignored: list[str] = []
    ignored_fields: list[str] = []
    for i, item in enumerate(items):
        param = f"tools[{i}]"
        tool = _object(item, param)
        kind = tool.get("type")
        if kind in ("function", "custom"):
            placed.append((_responses_tool(tool, param, ""), param))
            ignored_fields += [f"{param}.{f}" for f in _IGNORED_TOOL_FIELDS if f in tool]
        elif kind == "namespace":
            namespace = check_name(tool.get("name"), f"{param}.name")
            inner = _list(tool.get("tools"), f"{param}.tools")
            for j, entry in enumerate(inner):
                inner_param = f"{param}.tools[{j}]"
                inner_tool = _object(entry, inner_param)
                if inner_tool.get("type") not in ("function", "custom"):
                    raise invalid_request(
                        f"Invalid value for '{inner_param}.type': expected 'function' or 'custom'.",
                        f"{inner_param}.type",
                        "invalid_value",
                    )
                placed.append((_responses_tool(inner_tool, inner_param, namespace), inner_param))
                ignored_fields += [
                    f"{inner_param}.{f}" for f in _IGNORED_TOOL_FIELDS if f in inner_tool
                ]
        elif isinstance(kind, str) and kind in HOSTED_AS:
            if HOSTED_AS[kind] not in hosted:
                hosted.append(HOSTED_AS[kind])
        elif isinstance(kind, str) and kind in IGNORED_HOSTED:
            ignored.append(kind)
        else:
            raise invalid_request(
                f"Invalid value for '{param}.type': unknown tool type {json.dumps(kind)}.",
                f"{param}.type",
                "invalid_value",
            )
    # The limit counts what the model is offered, namespaces flattened.
    check_count(len(placed))
    check_unique(placed)
    tools = [t for t, _ in placed]
    if not hosted:  # allowed_tools may name only hosted tools
        _check_choice_needs_tools(body.get("tool_choice"), tools, "tool_choice")
    choice = _responses_tool_choice(body.get("tool_choice"), tools)
    return ToolRequest(
        tuple(tools), choice, parallel, tuple(hosted), tuple(ignored), tuple(ignored_fields)
    )


def _responses_tool(tool: Mapping[str, Any], param: str, namespace: str) -> cpb.ClientTool:
    if tool.get("type") == "function":
        return function_tool(
            tool.get("name"),
            tool.get("description"),
            tool.get("parameters"),
            tool.get("strict"),
            param,
            namespace,
        )
    fmt = custom_format(tool.get("format"), f"{param}.format", nested_grammar=False)
    return custom_tool(tool.get("name"), tool.get("description"), fmt, param, namespace)


def _responses_tool_choice(value: Any, tools: Sequence[cpb.ClientTool]) -> cpb.ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        return cpb.ToolChoice(mode=_mode(value, "tool_choice"))
    choice = _object(value, "tool_choice")
    kind = choice.get("type")
    if kind in _KINDS:
        name = _named(choice.get("name"), tools, _KINDS[kind], "tool_choice.name")
        return cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name=name)
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise invalid_request(
                "Invalid value for 'tool_choice.mode': expected 'auto' or 'required'.",
                "tool_choice.mode",
                "invalid_value",
            )
        names = []
        for i, entry in enumerate(_list(choice.get("tools"), "tool_choice.tools")):
            param = f"tool_choice.tools[{i}]"
            item = _object(entry, param)
            item_kind = item.get("type")
            if item_kind in _KINDS:
                names.append(_named(item.get("name"), tools, _KINDS[item_kind], f"{param}.name"))
            # Hosted entries (web_search, ...) name no client tool: they stay as offered.
        return cpb.ToolChoice(mode=_MODES[mode], allowed_names=names)
    raise unsupported_choice(kind)


def unsupported_choice(kind: Any) -> ApiError:
    """A tool_choice forcing a hosted tool (file_search, mcp, shell, ...): nothing to force."""
    return unsupported(
        "tool_choice",
        f"forcing the hosted tool type {json.dumps(kind)} is not supported; use 'auto', "
        "'required', 'none', a function or custom tool, or 'allowed_tools'",
    )


# --- into the RunTurnRequest (both APIs) ----------------------------------------------------

# The header naming Claude Code's built-in tools a turn may use (see builtin_choice).
BUILTIN_TOOLS_HEADER = "X-Claude-Code-Builtin-Tools"


def builtin_choice(wanted: bool | list[str] | None, header: str | None) -> cpb.BuiltinTools | None:
    """Claude Code's built-in tools beside the client's: the body's extension
    `claude_code.builtin_tools` (true: all the key allows; a list: those), else
    the X-Claude-Code-Builtin-Tools header ("true", "all", "false" or names
    separated by commas); None: the key's default (none unless the key sets one)."""
    if wanted is None and header:
        value = header.strip()
        if value.lower() in ("true", "all", "1", "yes"):
            wanted = True
        elif value.lower() in ("false", "none", "0", "no"):
            wanted = False
        else:
            wanted = [n.strip() for n in value.split(",") if n.strip()]
    if wanted is None:
        return None
    if isinstance(wanted, bool):
        return cpb.BuiltinTools(all=wanted)
    return cpb.BuiltinTools(names=wanted)


def with_tools(
    run: agent_pb2.RunTurnRequest, tools: ToolRequest, builtin: cpb.BuiltinTools | None
) -> agent_pb2.RunTurnRequest:
    """`run` with the request's client tools, tool_choice, parallel_tool_calls and
    built-in opt-in; without client tools none of these means anything."""
    if not tools.tools:
        return run
    run.tools.extend(tools.tools)
    if tools.choice is not None:
        run.tool_choice.CopyFrom(tools.choice)
    if tools.parallel_tool_calls is not None:
        run.parallel_tool_calls = tools.parallel_tool_calls
    if builtin is not None:
        run.builtin_tools.CopyFrom(builtin)
    run.hosted_tools.extend(tools.hosted)
    return run
