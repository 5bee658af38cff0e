"""Live: client tools on Chat Completions with the official openai SDK, through
gunicorn, the real core, the real Claude Code CLI and the model double."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, start_core
from tests.stack import ccapi

MODEL = "sonnet"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def two_calls(double: ModelDouble, ids: tuple[str, str]) -> None:
    double.script(
        Reply.call_tools(
            [("get_weather", {"city": "Oslo"}), ("get_time", {"city": "Oslo"})],
            text_before="Checking.",
            ids=list(ids),
        ),
        Reply.echo_tool_results("{name}={text}", "; "),
    )


def test_parallel_calls_round_trip_without_streaming(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    two_calls(model_double, ("toolu_c1", "toolu_c2"))
    messages: list[Any] = [{"role": "user", "content": "weather and time in Oslo"}]

    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_c1", "function", "get_weather"),
        ("toolu_c2", "function", "get_time"),
    ]
    assert json.loads(calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    # Only the client's tools were offered, named as the client named them.
    offered = set(model_double.main_requests[0].offered_tools) - {"DeferredToolPlaceholder"}
    assert offered == {"get_weather", "get_time"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": "toolu_c1", "content": "rain"},
        {"role": "tool", "tool_call_id": "toolu_c2", "content": [{"type": "text", "text": "9:00"}]},
    ]
    second = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "get_weather=rain; get_time=9:00"
    assert second.choices[0].message.tool_calls is None


def test_streamed_calls_assemble_with_the_sdk_helper(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    two_calls(model_double, ("toolu_s1", "toolu_s2"))
    messages: list[Any] = [{"role": "user", "content": "stream it"}]

    with sdk.chat.completions.stream(model=MODEL, messages=messages, tools=[WEATHER, TIME]) as s:
        pieces = [
            e
            for e in s
            if e.type == "tool_calls.function.arguments.delta"  # type: ignore[comparison-overlap]
        ]
        final = s.get_final_completion()

    assert pieces, "arguments arrive in pieces"
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls or []
    assert [c.id for c in calls] == ["toolu_s1", "toolu_s2"]
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Oslo"},
        {"city": "Oslo"},
    ]

    messages.append(
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }  # type: ignore[union-attr]
                for c in calls
            ],
        }
    )
    messages += [
        {"role": "tool", "tool_call_id": "toolu_s1", "content": "sun"},
        {"role": "tool", "tool_call_id": "toolu_s2", "content": "noon"},
    ]
    text = ""
    finish = None
    for chunk in sdk.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER, TIME], stream=True
    ):
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "get_weather=sun; get_time=noon"
    assert finish == "stop"


def test_legacy_functions_round_trip(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.call_tools([("get_weather", {"city": "Rome"})], ids=["toolu_l1"]),
        Reply.echo_tool_results("{name} says {text}"),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Rome"}]
    functions = [WEATHER["function"]]

    first = sdk.chat.completions.create(model=MODEL, messages=messages, functions=functions)

    choice = first.choices[0]
    assert choice.finish_reason == "function_call"
    call = choice.message.function_call
    assert call is not None and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Rome"}
    messages += [
        {"role": "assistant", "content": None, "function_call": call.model_dump()},
        {"role": "function", "name": "get_weather", "content": "hot"},
    ]
    second = sdk.chat.completions.create(model=MODEL, messages=messages, functions=functions)
    assert second.choices[0].message.content == "get_weather says hot"


@pytest.mark.parametrize(
    ("choice", "note"),
    [
        ("required", "at least one of the tools"),
        ({"type": "function", "function": {"name": "get_time"}}, "`get_time`"),
    ],
)
def test_tool_choice_asks_the_model(
    sdk: openai.OpenAI, model_double: ModelDouble, choice: Any, note: str
) -> None:
    model_double.script(Reply.text("ok"))
    sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "go"}],
        tools=[WEATHER, TIME],
        tool_choice=choice,
    )
    assert note in (model_double.main_requests[-1].last_user_text or "")


def test_tool_choice_none_offers_no_client_tools(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("no tools"))
    sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "go"}],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert "get_weather" not in model_double.main_requests[-1].offered_tools


def test_a_result_for_an_unknown_call_is_a_400_and_the_calls_still_wait(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools([("get_weather", {"city": "Lima"})], ids=["toolu_u1"]),
        Reply.echo_tool_results(),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Lima"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    messages.append(first.choices[0].message.model_dump(exclude_none=True))

    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[*messages, {"role": "tool", "tool_call_id": "toolu_nope", "content": "x"}],
            tools=[WEATHER],
        )
    assert "toolu_nope" in str(refused.value)

    good = sdk.chat.completions.create(
        model=MODEL,
        messages=[*messages, {"role": "tool", "tool_call_id": "toolu_u1", "content": "mild"}],
        tools=[WEATHER],
    )
    assert good.choices[0].message.content == "get_weather: mild"


def test_missing_results_name_the_calls_and_a_new_message_moves_on(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    two_calls(model_double, ("toolu_m1", "toolu_m2"))
    messages: list[Any] = [{"role": "user", "content": "weather and time"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])
    messages.append(first.choices[0].message.model_dump(exclude_none=True))

    with pytest.raises(openai.BadRequestError) as missing:
        sdk.chat.completions.create(
            model=MODEL,
            messages=[*messages, {"role": "tool", "tool_call_id": "toolu_m1", "content": "x"}],
            tools=[WEATHER, TIME],
        )
    assert "toolu_m2" in str(missing.value)
    assert missing.value.param == "tool_call_id"

    model_double.reset()
    model_double.script(Reply.text("Sure, a joke instead."))
    moved_on = sdk.chat.completions.create(
        model=MODEL,
        messages=[*messages, {"role": "user", "content": "forget it, tell me a joke"}],
        tools=[WEATHER, TIME],
    )
    assert moved_on.choices[0].message.content == "Sure, a joke instead."
    assert moved_on.choices[0].finish_reason == "stop"
    # The same conversation went on.
    session = (moved_on.model_extra or {})["claude_code"]["session_id"]
    assert session == (first.model_extra or {})["claude_code"]["session_id"]


def test_calls_nobody_answers_time_out_and_the_conversation_goes_on(
    model_double: ModelDouble, tmp_path: Path
) -> None:
    core = start_core(model_double.url, CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS="2")
    facade = start_facade(core.addr, tmp_path / "gunicorn.log", workers=1)
    client = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=core.api_key, max_retries=0)
    try:
        model_double.script(
            Reply.call_tools([("get_weather", {"city": "Oslo"})], ids=["toolu_t9"]),
            Reply.text("after the timeout"),
            Reply.text("still here"),
        )
        messages: list[Any] = [{"role": "user", "content": "weather"}]
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
        assert first.choices[0].finish_reason == "tool_calls"
        time.sleep(5)  # nobody answers

        # The waiting turn was interrupted: a late result finds no call waiting for it,
        # so it reaches the model as text in the resumed session.
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "toolu_t9", "content": "late"},
        ]
        late = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
        assert late.choices[0].finish_reason == "stop"
        session = (first.model_extra or {})["claude_code"]["session_id"]
        assert (late.model_extra or {})["claude_code"]["session_id"] == session
        assert "late" in (model_double.main_requests[-1].last_user_text or "")
    finally:
        client.close()
        facade.stop()
        core.cleanup()


def test_built_in_tools_are_opt_in_and_a_client_tool_named_like_one_wins(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.text("ok"))
    mine: Any = {
        "type": "function",
        "function": {"name": "Read", "description": "The client's own Read."},
    }
    sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "go"}],
        tools=[mine, WEATHER],
        extra_body={"claude_code": {"builtin_tools": ["Read", "Grep"]}},
    )
    offered = model_double.main_requests[-1].offered_tools
    assert set(offered) - {"DeferredToolPlaceholder"} == {"Read", "Grep", "get_weather"}
    assert offered["Read"].get("description") == "The client's own Read."

    sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "again"}],
        tools=[WEATHER],
        extra_headers={"X-Claude-Code-Builtin-Tools": "Glob"},
    )
    offered = model_double.main_requests[-1].offered_tools
    assert set(offered) - {"DeferredToolPlaceholder"} == {"Glob", "get_weather"}


def test_web_search_options_offer_claude_codes_web_search_beside_client_tools(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text("answered"))
    done = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "search it"}],
        tools=[WEATHER],
        web_search_options={"search_context_size": "low"},
    )
    assert done.choices[0].message.content == "answered"
    offered = set(model_double.main_requests[-1].offered_tools)
    assert {"get_weather", "WebSearch"} <= offered
    assert "Bash" not in offered


def _key_client(facade: Facade, core: CoreProcess, *options: str) -> openai.OpenAI:
    out = ccapi(core.env, "keys", "create", "--name", "builtin-default", *options)
    secret = out.strip().splitlines()[-1]
    return openai.OpenAI(base_url=facade.base_url + "/v1", api_key=secret, max_retries=0)


def _offered(client: openai.OpenAI, model_double: ModelDouble, **extra: Any) -> set[str]:
    model_double.script(Reply.text("answered"))
    done = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        **extra,
    )
    assert done.choices[0].message.content == "answered"
    return set(model_double.main_requests[-1].offered_tools) - {"DeferredToolPlaceholder"}


def test_a_keys_builtin_default_applies_when_the_request_does_not_say(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    with _key_client(facade, core, "--builtin-tools", "Read,Grep") as client:
        assert _offered(client, model_double) == {"get_weather", "Read", "Grep"}
        # The request's own choice wins over the key's default.
        no_builtins = {"extra_body": {"claude_code": {"builtin_tools": False}}}
        assert _offered(client, model_double, **no_builtins) == {"get_weather"}


def test_a_keys_default_of_all_means_all_its_tools(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    options = ("--tools", "Read,Glob", "--builtin-tools", "all")
    with _key_client(facade, core, *options) as client:
        assert _offered(client, model_double) == {"get_weather", "Read", "Glob"}


def test_a_builtin_default_outside_the_keys_tools_is_refused(core: CoreProcess) -> None:
    with pytest.raises(RuntimeError, match="builtin_tools_default"):
        ccapi(
            core.env, "keys", "create", "--name", "x", "--tools", "Read", "--builtin-tools", "Bash"
        )
