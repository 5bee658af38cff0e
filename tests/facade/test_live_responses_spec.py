"""Live: what the real stack sends on the Responses API validates against the
OpenResponses spec and the openai SDK (tests/facade/openresponses_check.py), and
assistant phases come out of real Claude Code turns and are kept as input."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from tests.facade.live import ModelDouble, Reply
from tests.facade.openresponses_check import (
    check_input_items,
    check_response,
    check_stream,
    sse_events,
)

MODEL = "sonnet"
EXEC: Any = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command on the user's machine.",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}


def _post(sdk: openai.OpenAI, body: dict[str, Any]) -> httpx.Response:
    r = httpx.post(
        str(sdk.base_url) + "responses",
        timeout=90,
        headers={"Authorization": f"Bearer {sdk.api_key}"},
        json=body,
    )
    assert r.status_code == 200, r.text
    return r


def _get(sdk: openai.OpenAI, path: str) -> dict[str, Any]:
    r = httpx.get(
        str(sdk.base_url) + path, timeout=30, headers={"Authorization": f"Bearer {sdk.api_key}"}
    )
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def _phases(response: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(i["type"], i.get("phase")) for i in response["output"] if i["type"] != "reasoning"]


def test_builtin_tool_turn_stream_and_stored_object(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use(
            "Write", {"file_path": "{cwd}/a.txt", "content": "a"}, text_before="Writing a.txt."
        ),
        Reply.thinking("It is written.", "Wrote a.txt."),
    )
    r = _post(sdk, {"model": MODEL, "input": "write a.txt", "stream": True, "temperature": 0.4})
    final = check_stream(sse_events(r.text))
    assert _phases(final) == [
        ("message", "commentary"),
        ("mcp_call", None),
        ("message", "final_answer"),
    ]
    assert final["temperature"] == 0.4 and final["top_p"] == 1.0
    got = _get(sdk, f"responses/{final['id']}")
    check_response(got)
    assert _phases(got) == _phases(final) and got["temperature"] == 0.4
    check_input_items(_get(sdk, f"responses/{final['id']}/input_items"))


def test_client_function_call_and_its_result(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.call_tools(
            [("exec_command", {"cmd": "ls"})], text_before="Listing.", ids=["toolu_s1"]
        ),
        Reply.echo_tool_results("ran: {text}"),
    )
    r = _post(sdk, {"model": MODEL, "input": "list", "stream": True, "tools": [EXEC]})
    first = check_stream(sse_events(r.text))
    assert _phases(first) == [("message", "commentary"), ("function_call", None)]
    second = _post(
        sdk,
        {
            "model": MODEL,
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": "toolu_s1", "output": "a.txt"}],
            "tools": [EXEC],
        },
    ).json()
    check_response(second)
    assert _phases(second) == [("message", "final_answer")]
    check_input_items(_get(sdk, f"responses/{second['id']}/input_items"))


def test_input_assistant_phases_are_kept(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(Reply.text("Noted."))
    done = _post(
        sdk,
        {
            "model": MODEL,
            "input": [
                {"role": "user", "content": "check the build"},
                {"role": "assistant", "phase": "commentary", "content": "Running it."},
                {"role": "assistant", "phase": "final_answer", "content": "It passes."},
                {"role": "user", "content": "thanks"},
            ],
        },
    ).json()
    check_response(done)
    page = _get(sdk, f"responses/{done['id']}/input_items?order=asc")
    check_input_items(page)
    assert [(i["role"], i.get("phase")) for i in page["data"]] == [
        ("user", None),
        ("assistant", "commentary"),
        ("assistant", "final_answer"),
        ("user", None),
    ]
    # The SDK reads the phase back too.
    items = sdk.responses.input_items.list(done["id"], order="asc")
    assert [getattr(i, "phase", None) for i in items.data][1:3] == ["commentary", "final_answer"]


def test_a_turn_cut_by_the_output_limit_is_incomplete(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    # Claude Code asks the model to go on after a cut answer (a few times) before
    # it gives up and reports the limit.
    model_double.script(
        *[Reply.text(f"Part {i} of a long answer", stop_reason="max_tokens") for i in range(6)]
    )
    r = _post(sdk, {"model": MODEL, "input": "go on", "stream": True, "max_output_tokens": 16})
    events = sse_events(r.text)
    final = check_stream(events)
    assert final["status"] == "incomplete", final["error"]
    text = "".join(
        p["text"] for i in final["output"] if i["type"] == "message" for p in i["content"]
    )
    assert text.startswith("Part 0 of a long answer") and "API Error" not in text, text
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    check_response(_get(sdk, f"responses/{final['id']}"))
