"""What the core refuses before a turn runs: contract fields it does not run yet."""

from __future__ import annotations

import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from core_service.errors import InvalidArgument
from core_service.turns.admission import refuse_unsupported


def _user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text)])


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (pb.RunTurnRequest(messages=[_user("hi")], tools=[cpb.ClientTool(name="f")]), "tools"),
        (
            pb.RunTurnRequest(messages=[_user("hi")], parallel_tool_calls=False),
            "parallel_tool_calls",
        ),
        (pb.RunTurnRequest(messages=[_user("hi")], tool_choice=cpb.ToolChoice()), "tool_choice"),
        (
            pb.RunTurnRequest(
                messages=[
                    cpb.Message(
                        role=cpb.ROLE_ASSISTANT,
                        content=[cpb.ContentPart(tool_call=cpb.ClientToolCall(call_id="c1"))],
                    ),
                    _user("hi"),
                ]
            ),
            "messages[0].content[0]",
        ),
    ],
)
def test_fields_not_run_yet_are_refused_by_name(request_: pb.RunTurnRequest, param: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        refuse_unsupported(request_)
    assert caught.value.param == param


def test_a_plain_request_passes() -> None:
    refuse_unsupported(pb.RunTurnRequest(messages=[_user("hi")]))
