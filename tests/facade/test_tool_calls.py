"""Client tool definitions and tool_choice, checked and turned into claudecode.v1
(http_facade.tool_calls): what is accepted, and the 400 each mistake gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claudecode.v1 import content_pb2 as cpb
from http_facade.errors import ApiError
from http_facade.tool_calls import MAX_TOOLS, ToolRequest, chat_tools, responses_tools

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "Città"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
        "unit": {"enum": ["c", "f", None]},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def chat_function(name: str = "get_weather", **fields: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **fields}}


def refused(call: Any, body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(body)
    assert caught.value.status == 400
    return caught.value


# --- Chat Completions -------------------------------------------------------------


def test_chat_function_tools_become_client_tools_schema_unchanged() -> None:
    request = chat_tools(
        {
            "tools": [
                chat_function(description="Weather.", parameters=WEATHER_SCHEMA, strict=True),
                chat_function("ping"),
                chat_function("noop", parameters={}),
            ],
            "parallel_tool_calls": False,
        }
    )
    weather, ping, noop = request.tools
    assert (weather.name, weather.description, weather.strict) == ("get_weather", "Weather.", True)
    assert weather.kind == cpb.CLIENT_TOOL_KIND_FUNCTION
    # Key order, integers, null and non-ASCII text as the client wrote them.
    assert weather.parameters_json == json.dumps(
        WEATHER_SCHEMA, ensure_ascii=False, separators=(",", ":")
    )
    assert json.loads(weather.parameters_json) == WEATHER_SCHEMA
    assert ping.parameters_json == noop.parameters_json == ""  # no arguments
    assert request.choice is None and request.parallel_tool_calls is False
    assert request.names == {"get_weather", "ping", "noop"}


def test_no_tools_is_an_empty_request() -> None:
    assert chat_tools({}) == ToolRequest()
    assert chat_tools({"tools": [], "tool_choice": "none"}).tools == ()
    assert chat_tools({"tool_choice": "auto"}).choice == cpb.ToolChoice(
        mode=cpb.TOOL_CHOICE_MODE_AUTO
    )


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("get weather", "invalid_value"),
        ("ns.tool", "invalid_value"),
        ("x" * 65, "string_above_max_length"),
        ("", "missing_required_parameter"),
        (None, "missing_required_parameter"),
    ],
)
def test_bad_tool_names_are_refused(name: Any, code: str) -> None:
    error = refused(chat_tools, {"tools": [chat_function("ok"), chat_function(name)]})
    assert error.param == "tools[1].function.name" and error.code == code


def test_longest_allowed_name() -> None:
    assert chat_tools({"tools": [chat_function("a-" + "x" * 62)]}).tools[0].name == "a-" + "x" * 62


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ([], "[] is not of type 'object'"),
        ("{}", "is not of type 'object'"),
        ({"type": "string"}, "got 'type: \"string\"'"),
        ({"properties": {"a": {}}}, "got 'type: null'"),
        ({"type": "object", "properties": []}, "'properties' must be an object"),
        ({"type": "object", "required": "a"}, "'required' must be a list"),
    ],
)
def test_schemas_that_are_not_json_schema_objects_are_refused(parameters: Any, says: str) -> None:
    error = refused(chat_tools, {"tools": [chat_function(parameters=parameters)]})
    assert error.param == "tools[0].function.parameters"
    assert error.code == "invalid_function_parameters"
    assert "Invalid schema for function 'get_weather'" in error.message and says in error.message


def test_at_most_128_tools() -> None:
    tools = [chat_function(f"t{i}") for i in range(MAX_TOOLS)]
    assert len(chat_tools({"tools": tools}).tools) == MAX_TOOLS
    error = refused(chat_tools, {"tools": [*tools, chat_function("one_more")]})
    assert (error.param, error.code) == ("tools", "array_above_max_length")
    assert "maximum length 128, but got an array with length 129" in error.message


def test_duplicate_names_are_refused() -> None:
    error = refused(
        chat_tools, {"tools": [chat_function("a"), chat_function("b"), chat_function("a")]}
    )
    assert error.param == "tools[2].function.name"
    assert "'tools[0].function'" in error.message


def test_unknown_tool_type_and_shapes_are_refused() -> None:
    assert refused(chat_tools, {"tools": [{"type": "web_search"}]}).param == "tools[0].type"
    assert refused(chat_tools, {"tools": [{"type": "function"}]}).param == "tools[0].function"
    assert refused(chat_tools, {"tools": "get_weather"}).param == "tools"
    assert refused(chat_tools, {"tools": [chat_function(description=3)]}).param == (
        "tools[0].function.description"
    )
    assert refused(chat_tools, {"tools": [chat_function(strict="yes")]}).param == (
        "tools[0].function.strict"
    )
    assert refused(chat_tools, {"parallel_tool_calls": "no"}).param == "parallel_tool_calls"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("none", cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NONE)),
        ("auto", cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_AUTO)),
        ("required", cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_REQUIRED)),
        (
            {"type": "function", "function": {"name": "lookup"}},
            cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="lookup"),
        ),
        (
            {"type": "custom", "custom": {"name": "patch"}},
            cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="patch"),
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "get_weather"}},
                        {"type": "custom", "custom": {"name": "patch"}},
                    ],
                },
            },
            cpb.ToolChoice(
                mode=cpb.TOOL_CHOICE_MODE_REQUIRED, allowed_names=["get_weather", "patch"]
            ),
        ),
    ],
)
def test_chat_tool_choice_forms(tool_choice: Any, expected: cpb.ToolChoice) -> None:
    tools = [
        chat_function(),
        chat_function("lookup"),
        {"type": "custom", "custom": {"name": "patch"}},
    ]
    assert chat_tools({"tools": tools, "tool_choice": tool_choice}).choice == expected


@pytest.mark.parametrize(
    ("tool_choice", "param"),
    [
        ({"type": "function", "function": {"name": "missing"}}, "tool_choice"),
        ({"type": "custom", "custom": {"name": "get_weather"}}, "tool_choice"),  # wrong kind
        ({"type": "function", "function": {}}, "tool_choice.function.name"),
        ("sometimes", "tool_choice"),
        ({"type": "file_search"}, "tool_choice"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "none", "tools": []}},
            "tool_choice.allowed_tools.mode",
        ),
    ],
)
def test_bad_chat_tool_choice_is_refused(tool_choice: Any, param: str) -> None:
    error = refused(chat_tools, {"tools": [chat_function()], "tool_choice": tool_choice})
    assert error.param == param


def test_tool_choice_that_names_tools_needs_tools() -> None:
    error = refused(chat_tools, {"tool_choice": "required"})
    assert (
        error.param == "tool_choice" and "only allowed when 'tools' are specified" in error.message
    )
    named = {"type": "function", "function": {"name": "x"}}
    assert refused(chat_tools, {"tools": [], "tool_choice": named}).param == "tool_choice"


def test_chat_custom_tool_with_a_grammar() -> None:
    grammar = {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /.+/"}}
    request = chat_tools(
        {
            "tools": [
                {"type": "custom", "custom": {"name": "patch", "format": grammar}},
                {"type": "custom", "custom": {"name": "note", "format": {"type": "text"}}},
                {"type": "custom", "custom": {"name": "free", "description": "Anything."}},
            ]
        }
    )
    patch, note, free = request.tools
    assert patch.kind == cpb.CLIENT_TOOL_KIND_CUSTOM
    assert patch.format == cpb.CustomToolFormat(
        type="grammar", syntax="lark", definition="start: /.+/"
    )
    assert note.format.type == "text" and not free.HasField("format")
    assert free.description == "Anything."
    bad = {"type": "grammar", "grammar": {"syntax": "peg", "definition": "x"}}
    error = refused(
        chat_tools, {"tools": [{"type": "custom", "custom": {"name": "p", "format": bad}}]}
    )
    assert error.param == "tools[0].custom.format.grammar.syntax"


def test_legacy_functions_and_function_call() -> None:
    functions = [{"name": "get_weather", "parameters": WEATHER_SCHEMA}, {"name": "ping"}]
    request = chat_tools({"functions": functions, "function_call": {"name": "ping"}})
    assert [t.name for t in request.tools] == ["get_weather", "ping"]
    assert json.loads(request.tools[0].parameters_json) == WEATHER_SCHEMA
    assert request.choice == cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="ping")
    assert chat_tools({"functions": functions, "function_call": "none"}).choice == cpb.ToolChoice(
        mode=cpb.TOOL_CHOICE_MODE_NONE
    )
    assert refused(chat_tools, {"functions": [{"name": "a b"}]}).param == "functions[0].name"
    missing = refused(chat_tools, {"functions": functions, "function_call": {"name": "nope"}})
    assert "tool choice 'nope' not found" in missing.message
    assert refused(chat_tools, {"functions": functions, "function_call": "required"}).param == (
        "function_call"
    )
    both = {"tools": [chat_function()], "functions": functions}
    assert refused(chat_tools, both).param == "functions"
    mixed = {"tools": [chat_function()], "tool_choice": "auto", "function_call": "auto"}
    assert refused(chat_tools, mixed).param == "function_call"
    assert refused(chat_tools, {"function_call": {"name": "x"}}).param == "function_call"


# --- Responses API -------------------------------------------------------------------

APPLY_PATCH_GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'


def codex_like_body() -> dict[str, Any]:
    """The tool kinds Codex CLI sends (names and shapes as in its requests)."""
    exec_schema = {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "yield_time_ms": {"type": "number"}},
        "required": ["cmd"],
        "additionalProperties": False,
    }
    return {
        "tools": [
            {
                "type": "function",
                "name": "exec_command",
                "description": "Runs a command.",
                "strict": False,
                "parameters": exec_schema,
            },
            {
                "type": "custom",
                "name": "apply_patch",
                "description": "Edit files with a patch.",
                "format": {"type": "grammar", "syntax": "lark", "definition": APPLY_PATCH_GRAMMAR},
            },
            {
                "type": "namespace",
                "name": "goals",
                "description": "Goal tools.",
                "tools": [
                    {
                        "type": "function",
                        "name": "update_goal",
                        "strict": False,
                        "defer_loading": True,
                        "parameters": {"type": "object", "properties": {}},
                    }
                ],
            },
            {"type": "web_search", "external_web_access": False},
            {"type": "tool_search", "execution": "client", "description": "Find tools."},
            {"type": "image_generation", "output_format": "png"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
    }


def test_codex_tools_are_accepted() -> None:
    request = responses_tools(codex_like_body())
    exec_command, apply_patch, update_goal = request.tools
    assert exec_command.kind == cpb.CLIENT_TOOL_KIND_FUNCTION
    assert json.loads(exec_command.parameters_json)["required"] == ["cmd"]
    assert apply_patch.kind == cpb.CLIENT_TOOL_KIND_CUSTOM
    assert apply_patch.format.definition == APPLY_PATCH_GRAMMAR
    assert (update_goal.name, update_goal.namespace) == ("update_goal", "goals")
    assert not exec_command.namespace
    assert request.hosted == ("web_search", "tool_search")
    assert request.ignored == ("image_generation",)
    assert request.ignored_fields == ("tools[2].tools[0].defer_loading",)
    assert request.choice == cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_AUTO)
    assert request.parallel_tool_calls is True


def test_responses_mistakes_are_refused() -> None:
    def body_with(*tools: Any, **extra: Any) -> dict[str, Any]:
        return {"tools": list(tools), **extra}

    fn = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    assert refused(responses_tools, body_with({"type": "nonsense"})).param == "tools[0].type"
    assert refused(responses_tools, body_with({**fn, "name": "f g"})).param == "tools[0].name"
    assert refused(responses_tools, body_with({**fn, "parameters": {"type": "array"}})).param == (
        "tools[0].parameters"
    )
    # Flattened namespaces share one set of names.
    ns = {"type": "namespace", "name": "n", "description": "", "tools": [fn]}
    assert refused(responses_tools, body_with(fn, ns)).param == "tools[1].tools[0].name"
    hosted_inside = {**ns, "tools": [{"type": "web_search"}]}
    assert refused(responses_tools, body_with(hosted_inside)).param == "tools[0].tools[0].type"
    bad_grammar = {"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "lark"}}
    assert refused(responses_tools, body_with(bad_grammar)).param == "tools[0].format.definition"
    # The limit counts the functions inside namespaces.
    many = [{"type": "function", "name": f"f{i}"} for i in range(MAX_TOOLS)]
    big_ns = {"type": "namespace", "name": "n", "description": "", "tools": many}
    assert refused(responses_tools, body_with(big_ns, {**fn, "name": "extra"})).param == "tools"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("required", cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_REQUIRED)),
        (
            {"type": "function", "name": "update_goal"},
            cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="update_goal"),
        ),
        (
            {"type": "custom", "name": "apply_patch"},
            cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="apply_patch"),
        ),
        (
            {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "exec_command"}, {"type": "web_search"}],
            },
            cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_AUTO, allowed_names=["exec_command"]),
        ),
    ],
)
def test_responses_tool_choice_forms(tool_choice: Any, expected: cpb.ToolChoice) -> None:
    body = {**codex_like_body(), "tool_choice": tool_choice}
    assert responses_tools(body).choice == expected


def test_bad_responses_tool_choice_is_refused() -> None:
    body = codex_like_body()
    missing = refused(responses_tools, {**body, "tool_choice": {"type": "function", "name": "x"}})
    assert missing.param == "tool_choice" and "tool choice 'x' not found" in missing.message
    hosted = refused(responses_tools, {**body, "tool_choice": {"type": "file_search"}})
    assert (hosted.param, hosted.code) == ("tool_choice", "unsupported_parameter")
    assert refused(responses_tools, {"tool_choice": "required"}).param == "tool_choice"
    assert responses_tools({"tool_choice": "none"}).tools == ()
