"""Structured output with the real Claude Code CLI (bundled with the SDK) and
the model double: what `output_format` makes the CLI do, and what
core_service.agent.structured_output makes of each outcome. The findings are
written down in that module's docstring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import claude_agent_sdk
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    ToolPermissionContext,
    UserMessage,
)
from claude_agent_sdk.types import ToolResultBlock

from claudecode.v1 import agent_pb2 as pb
from core_service.agent.structured_output import (
    REASON,
    output_format_option,
    structured_answer,
)
from core_service.errors import ModelError
from tests.model_double import ModelDouble, Reply

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
pytestmark = pytest.mark.skipif(not CLAUDE.exists(), reason="bundled Claude Code CLI missing")

# Nested objects, an array and an enum, strict-style (everything required).
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}},
            "required": ["name", "vip"],
            "additionalProperties": False,
        },
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku", "qty"],
                "additionalProperties": False,
            },
        },
        "status": {"type": "string", "enum": ["open", "shipped"]},
    },
    "required": ["customer", "items", "status"],
    "additionalProperties": False,
}
ORDER = {
    "customer": {"name": "Åsa", "vip": True},
    "items": [{"sku": "b-12", "qty": 2}, {"sku": "n-3", "qty": 30}],
    "status": "open",
}


@pytest.fixture
def double() -> Any:
    with ModelDouble() as started:
        yield started


async def run_turn(
    double: ModelDouble, tmp_path: Path, fmt: pb.OutputFormat, tools: list[str]
) -> tuple[ResultMessage, list[str], list[ToolResultBlock]]:
    """One turn with the output format; the result, the tools the permission
    callback was asked about, and the tool results Claude Code produced."""
    (tmp_path / "ws").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    asked: list[str] = []

    async def permit(
        name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        asked.append(name)
        return PermissionResultDeny(message="not in this test")

    options = ClaudeAgentOptions(
        cwd=str(tmp_path / "ws"),
        permission_mode="default",
        can_use_tool=permit,
        setting_sources=[],
        tools=tools,
        output_format=output_format_option(fmt),
        env=double.cli_env(tmp_path / "home", max_retries=0),
    )
    results: list[ToolResultBlock] = []
    async with ClaudeSDKClient(options) as client:
        await client.query("Record the order for Åsa.")
        async for message in client.receive_response():
            if isinstance(message, UserMessage) and isinstance(message.content, list):
                results += [b for b in message.content if isinstance(b, ToolResultBlock)]
            if isinstance(message, ResultMessage):
                return message, asked, results
    raise AssertionError("no ResultMessage")


def schema_format(schema: dict[str, Any], strict: bool = True) -> pb.OutputFormat:
    return pb.OutputFormat(
        kind=pb.OUTPUT_FORMAT_KIND_JSON_SCHEMA,
        name="order",
        schema_json=json.dumps(schema),
        strict=strict,
    )


@pytest.mark.parametrize("strict", [True, False])
async def test_a_valid_document_is_the_answer(
    double: ModelDouble, tmp_path: Path, strict: bool
) -> None:
    double.script(Reply.call_tools([("StructuredOutput", ORDER)]))
    result, asked, tool_results = await run_turn(
        double, tmp_path, schema_format(ORDER_SCHEMA, strict), ["Read"]
    )
    # Offered beside the turn's own tools, with the client's schema as its input.
    offered = double.main_requests[0].offered_tools
    assert "Read" in offered and offered["StructuredOutput"]["input_schema"] == ORDER_SCHEMA
    assert [r.content for r in tool_results] == ["Structured output provided successfully"]
    # One model call: the CLI ends the turn on the valid call.
    assert len(double.main_requests) == 1
    assert (result.subtype, result.is_error, result.structured_output) == ("success", False, ORDER)
    answer = structured_answer(result)
    assert answer is not None and json.loads(answer) == ORDER
    assert answer == result.result  # compact JSON, the same text the CLI reports
    assert "StructuredOutput" not in asked


async def test_json_object_accepts_any_object(double: ModelDouble, tmp_path: Path) -> None:
    double.script(Reply.call_tools([("StructuredOutput", {"anything": [1, {"goes": None}]})]))
    fmt = pb.OutputFormat(kind=pb.OUTPUT_FORMAT_KIND_JSON_OBJECT)
    result, _, _ = await run_turn(double, tmp_path, fmt, [])
    assert double.main_requests[0].offered_tools["StructuredOutput"]["input_schema"] == {
        "type": "object"
    }
    assert structured_answer(result) == '{"anything":[1,{"goes":null}]}'


async def test_invalid_documents_exhaust_five_attempts(double: ModelDouble, tmp_path: Path) -> None:
    wrong = {**ORDER, "status": "lost"}
    double.set_default(Reply.call_tools([("StructuredOutput", wrong)]))
    result, _, tool_results = await run_turn(double, tmp_path, schema_format(ORDER_SCHEMA), [])
    assert len(double.main_requests) == 5
    assert len(tool_results) == 5 and all(r.is_error for r in tool_results)
    assert "does not match required schema" in str(tool_results[0].content)
    assert result.is_error and result.subtype == "error_max_structured_output_retries"
    assert result.structured_output is None and result.result is None
    with pytest.raises(ModelError) as failed:
        structured_answer(result)
    assert failed.value.reason == REASON
    assert "after 5 attempts" in failed.value.message and "/status" in failed.value.message


async def test_plain_text_without_the_tool_is_no_answer(
    double: ModelDouble, tmp_path: Path
) -> None:
    double.set_default(Reply.text("Sure, the order is recorded."))
    result, _, _ = await run_turn(double, tmp_path, schema_format(ORDER_SCHEMA), [])
    # One reminder from the CLI, then it reports "success" with the text alone.
    assert len(double.main_requests) == 2
    assert "You MUST call the StructuredOutput tool" in double.main_requests[1].last_user_text
    assert (result.subtype, result.is_error, result.structured_output) == ("success", False, None)
    with pytest.raises(ModelError) as failed:
        structured_answer(result)
    assert failed.value.reason == REASON


def test_free_text_needs_no_option() -> None:
    assert output_format_option(None) is None
    assert output_format_option(pb.OutputFormat()) is None
