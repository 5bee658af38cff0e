"""Tool results in a request: they are the new turn when the conversation ends
with them, they are checked by call id, and resent history with calls is
recognised whatever the client did to ids and JSON spacing."""

from __future__ import annotations

import pytest

from claudecode.v1 import content_pb2 as cpb
from core_service import conversation
from core_service.errors import InvalidArgument
from core_service.turns.waiting import match_results


def _user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text)])


def _asked(arguments: str, call_id: str = "toolu_1") -> cpb.Message:
    call = cpb.ClientToolCall(call_id=call_id, name="lookup", arguments_json=arguments)
    return cpb.Message(
        role=cpb.ROLE_ASSISTANT,
        content=[cpb.ContentPart(text="Checking."), cpb.ContentPart(tool_call=call)],
    )


def _result(call_id: str, output: str) -> cpb.Message:
    out = cpb.ClientToolOutput(call_id=call_id, output=output)
    return cpb.Message(role=cpb.ROLE_TOOL, content=[cpb.ContentPart(tool_output=out)])


def test_trailing_tool_results_are_the_new_turn() -> None:
    split = conversation.split(
        [_user("q"), _asked('{"q": 1}'), _result("toolu_1", "a"), _result("toolu_2", "b")], ""
    )
    assert [o.call_id for o in split.tool_outputs] == ["toolu_1", "toolu_2"]
    assert [m.role for m in split.history] == [cpb.ROLE_USER, cpb.ROLE_ASSISTANT]


def test_a_user_message_after_results_makes_them_history() -> None:
    split = conversation.split([_user("q"), _asked("{}"), _result("toolu_1", "a"), _user("n")], "")
    assert split.tool_outputs == [] and conversation.message_text(split.prompt[0]) == "n"


def test_two_results_for_one_call_are_refused_naming_it() -> None:
    doubled = cpb.Message(
        role=cpb.ROLE_TOOL,
        content=[*_result("toolu_1", "a").content, *_result("toolu_1", "b").content],
    )
    with pytest.raises(InvalidArgument) as caught:
        conversation.split([_user("q"), doubled], "")
    assert "toolu_1" in caught.value.message


def test_history_with_calls_is_recognised_despite_json_spacing() -> None:
    stored = conversation.fingerprint([_user("q"), _asked('{"q":1,"r":[2]}')])
    assert conversation.fingerprint([_user("q"), _asked('{ "r": [2], "q": 1 }')]) == stored
    assert conversation.fingerprint([_user("q"), _asked('{"q":2,"r":[2]}')]) != stored


def test_results_must_answer_exactly_the_waiting_calls() -> None:
    outputs = [cpb.ClientToolOutput(call_id="b", output="2"), cpb.ClientToolOutput(call_id="a")]
    assert list(match_results(["a", "b"], outputs)) == ["a", "b"]  # in the calls' order
    with pytest.raises(InvalidArgument, match="c"):
        match_results(["a", "b", "c"], outputs)
    with pytest.raises(InvalidArgument, match="zz"):
        match_results(["a"], [cpb.ClientToolOutput(call_id="zz")])
    # A legacy function result names no call: it answers the only one.
    legacy = match_results(["a"], [cpb.ClientToolOutput(output="x")])
    assert legacy["a"].text == "x"
