"""Live: client tools on the Responses API with the official openai SDK, through
gunicorn, the real core, the real Claude Code CLI and the model double."""

from __future__ import annotations

import json
from typing import Any

import openai

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply
from tests.facade.openresponses_check import checked
from tests.stack import ccapi

MODEL = "sonnet"
EXEC: Any = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command on the user's machine.",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
    "strict": False,
}
APPLY_PATCH: Any = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"},
}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch"


def test_function_call_round_trip_by_previous_response_id_streamed(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools(
            [("exec_command", {"cmd": "ls"})], text_before="Listing.", ids=["toolu_r1"]
        ),
        Reply.echo_tool_results("ran: {text}"),
    )

    with sdk.responses.stream(model=MODEL, input="list files", tools=[EXEC]) as stream:
        kinds = [e.type for e in stream]
        first = checked(stream.get_final_response())

    calls = [i for i in first.output if i.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("toolu_r1", "exec_command", {"cmd": "ls"})
    ]
    assert first.status == "completed"
    # The text item closes, the call's item opens, its arguments stream, it closes, then done.
    added = kinds.index("response.output_item.added", kinds.index("response.output_text.done"))
    arguments_done = kinds.index("response.function_call_arguments.done")
    assert added < kinds.index("response.function_call_arguments.delta") < arguments_done
    assert kinds[arguments_done + 1] == "response.output_item.done"
    assert kinds[-1] == "response.completed"

    second = checked(
        sdk.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "toolu_r1", "output": "a.txt"}],
            tools=[EXEC],
        )
    )
    assert second.output_text == "ran: a.txt"
    items = sdk.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["function_call_output"]
    stored = checked(sdk.responses.retrieve(first.id))
    assert [i.type for i in stored.output] == ["message", "function_call"]


def test_store_false_with_the_whole_history_as_codex_sends_it(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools([("exec_command", {"cmd": "pwd"})], ids=["toolu_h1"]),
        Reply.echo_tool_results("cwd is {text}"),
    )
    codex_fields: dict[str, Any] = {
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "conv-123",
        "client_metadata": {"originator": "codex_exec"},
        "reasoning": {"effort": "medium", "summary": "auto"},
    }
    history: list[Any] = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Be brief."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "where am i"}],
        },
    ]
    tools = [EXEC, {"type": "web_search"}, APPLY_PATCH]

    first = checked(
        sdk.responses.create(
            model=MODEL, input=history, tools=tools, store=False, extra_body=codex_fields
        )
    )
    call = next(i for i in first.output if i.type == "function_call")
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "/home/me"})
    second = checked(
        sdk.responses.create(
            model=MODEL, input=history, tools=tools, store=False, extra_body=codex_fields
        )
    )

    assert second.output_text == "cwd is /home/me"
    assert first.claude_code["session_id"] == second.claude_code["session_id"]  # type: ignore[attr-defined]


def test_custom_tool_input_streams_as_text(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.call_tools([("apply_patch", {"input": PATCH})], ids=["toolu_p1"]),
        Reply.echo_tool_results("patched: {text}"),
    )

    with sdk.responses.stream(model=MODEL, input="add hello.txt", tools=[APPLY_PATCH]) as stream:
        deltas = [
            e.delta  # type: ignore[union-attr]
            for e in stream
            if e.type == "response.custom_tool_call_input.delta"
        ]
        first = checked(stream.get_final_response())

    call = next(i for i in first.output if i.type == "custom_tool_call")
    assert call.input == PATCH and "".join(deltas) == PATCH
    # The model was told the grammar.
    offered = model_double.main_requests[0].offered_tools["apply_patch"]
    assert "lark" in json.dumps(offered)

    second = checked(
        sdk.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[{"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}],
            tools=[APPLY_PATCH],
        )
    )
    assert second.output_text == "patched: Done!"


def test_an_unknown_call_id_is_a_400(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.call_tools([("exec_command", {"cmd": "id"})], ids=["toolu_x1"]),
        Reply.echo_tool_results(),
    )
    first = sdk.responses.create(model=MODEL, input="who am i", tools=[EXEC])
    try:
        sdk.responses.create(
            model=MODEL,
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "toolu_other", "output": "x"}],
            tools=[EXEC],
        )
    except openai.BadRequestError as refused:
        assert "toolu_other" in str(refused)
    else:
        raise AssertionError("an unknown call id must be refused")
    good = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "toolu_x1", "output": "me"}],
        tools=[EXEC],
    )
    assert good.output_text == "exec_command: me"


def test_a_namespaced_function_is_offered_by_its_name_and_its_call_names_the_namespace(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(Reply.call_tools([("read_issue", {"id": 7})], ids=["toolu_n1"]))
    namespace = {
        "type": "namespace",
        "name": "tracker",
        "description": "The issue tracker.",
        "tools": [
            {
                "type": "function",
                "name": "read_issue",
                "description": "Read an issue.",
                "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
            }
        ],
    }

    done = checked(
        sdk.responses.create(model=MODEL, input="issue 7?", extra_body={"tools": [namespace]})
    )

    call = next(i for i in done.output if i.type == "function_call")
    assert (call.name, json.loads(call.arguments)) == ("read_issue", {"id": 7})
    # The SDK may or may not model the field; either way it is on the item.
    carried = getattr(call, "namespace", None) or (call.model_extra or {}).get("namespace")
    assert carried == "tracker"
    assert "read_issue" in model_double.main_requests[0].offered_tools


def _hosted_turn(
    client: openai.OpenAI, model_double: ModelDouble, hosted: Any
) -> set[str]:
    """A turn with a client tool and a hosted one; the tools the model was offered."""
    model_double.script(Reply.text("answered"))
    done = checked(client.responses.create(model=MODEL, input="search it", tools=[EXEC, hosted]))
    assert done.output_text == "answered"
    return set(model_double.main_requests[-1].offered_tools)


def test_web_search_offers_claude_codes_web_search_beside_client_tools(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    offered = _hosted_turn(sdk, model_double, {"type": "web_search"})
    assert {"exec_command", "WebSearch"} <= offered
    assert "Bash" not in offered  # only the built-in the hosted tool maps to


def test_tool_search_keeps_the_client_tools_in_sight(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    # Claude Code's ToolSearch would hide the client's tools behind a search:
    # the hosted tool_search is accepted and ignored.
    offered = _hosted_turn(sdk, model_double, {"type": "tool_search"})
    assert "exec_command" in offered
    assert "ToolSearch" not in offered and "WebSearch" not in offered


def test_web_search_is_ignored_where_the_keys_tools_exclude_it(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    key = ccapi(core.env, "keys", "create", "--name", "no-search", "--tools", "Read,Grep")
    client = openai.OpenAI(
        base_url=facade.base_url + "/v1", api_key=key.strip().splitlines()[-1], max_retries=0
    )
    with client:
        offered = _hosted_turn(client, model_double, {"type": "web_search"})
    assert "exec_command" in offered
    assert "WebSearch" not in offered
