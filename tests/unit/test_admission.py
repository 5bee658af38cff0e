"""What the core refuses before a turn runs: client-tool fields that cannot be
honoured, named by the field (nothing is refused merely for being there)."""

from __future__ import annotations

import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from core_service.agent.options import ProcessShape
from core_service.errors import InvalidArgument
from core_service.turns.tool_requests import choice_note, with_client_tools


def _user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text)])


def _tool(name: str, parameters: str = "") -> cpb.ClientTool:
    return cpb.ClientTool(name=name, parameters_json=parameters)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (pb.RunTurnRequest(messages=[_user("hi")], tools=[_tool("bad name")]), "tools[0].name"),
        (
            pb.RunTurnRequest(messages=[_user("hi")], tools=[_tool("f"), _tool("f")]),
            "tools[1].name",
        ),
        (
            pb.RunTurnRequest(messages=[_user("hi")], tools=[_tool("f", '"a string"')]),
            "tools[0].parameters",
        ),
        (
            pb.RunTurnRequest(messages=[_user("hi")], tools=[_tool(f"f{i}") for i in range(129)]),
            "tools",
        ),
        (
            pb.RunTurnRequest(
                messages=[_user("hi")],
                tools=[_tool("f")],
                tool_choice=cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="g"),
            ),
            "tool_choice",
        ),
        (
            pb.RunTurnRequest(
                messages=[_user("hi")],
                tools=[_tool("f")],
                builtin_tools=cpb.BuiltinTools(names=["Bash"]),
            ),
            "builtin_tools",
        ),
    ],
)
def test_client_tool_fields_that_cannot_be_honoured_are_refused_by_name(
    request_: pb.RunTurnRequest, param: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        with_client_tools(ProcessShape(model="m"), request_, ("Read",))
    assert caught.value.param == param


def test_client_tools_shape_the_process_and_choice_becomes_a_note() -> None:
    request = pb.RunTurnRequest(
        messages=[_user("hi")],
        tools=[_tool("lookup", '{"type": "object"}')],
        tool_choice=cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NAMED, name="lookup"),
        parallel_tool_calls=False,
        builtin_tools=cpb.BuiltinTools(names=["Read"]),
    )
    shape = with_client_tools(ProcessShape(model="m"), request, ("Read",))
    assert shape.client_tools is not None and shape.client_tools.names == {"lookup"}
    assert shape.builtin_tools == ("Read",)
    assert "`lookup`" in choice_note(request) and "one tool at a time" in choice_note(request)
    # tool_choice none: nothing offered, the process is a plain one.
    request.tool_choice.CopyFrom(cpb.ToolChoice(mode=cpb.TOOL_CHOICE_MODE_NONE))
    assert with_client_tools(ProcessShape(model="m"), request, None).client_tools is None


def test_a_plain_request_keeps_its_shape() -> None:
    shape = ProcessShape(model="m")
    assert with_client_tools(shape, pb.RunTurnRequest(messages=[_user("hi")]), None) == shape
