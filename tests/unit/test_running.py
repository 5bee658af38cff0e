"""The runner over a fake process replaying recorded SDK messages: which
events come out, in which order, and how stop sequences and cancel requests
end a turn."""

from __future__ import annotations

from pathlib import Path

from claude_agent_sdk import TextBlock

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service.agent.options import ProcessShape
from core_service.file_changes import FileTracker
from core_service.turns import outcome
from core_service.turns.running import TurnRunner
from tests.unit.recorded import (
    FakeClient,
    FakeProcess,
    Flag,
    Step,
    assistant,
    block_start,
    result,
    text_delta,
    thinking_delta,
    tool_result,
    tool_use,
)

PROMPT = [cpb.ContentPart(text="write hello.txt")]


def runner_over(
    script: list[Step],
    workspace: Path,
    stops: list[str] | None = None,
    process: FakeProcess | None = None,
    flag: Flag | None = None,
) -> tuple[TurnRunner, FakeProcess, Flag]:
    process = process or FakeProcess(FakeClient(script))
    flag = flag or Flag()
    tracker = FileTracker(workspace, 10_000)
    return TurnRunner(process, "s-1", tracker, flag, stops or [], 200), process, flag


async def events_of(
    runner: TurnRunner, model: str = "claude-sonnet-4-5"
) -> list[pb.RunTurnResponse]:
    return [event async for event in runner.run(PROMPT, model)]


def kinds(events: list[pb.RunTurnResponse]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def text(events: list[pb.RunTurnResponse]) -> str:
    return "".join(e.text_delta.text for e in events if e.WhichOneof("event") == "text_delta")


async def test_a_turn_with_a_tool_streams_text_tools_file_changes_and_usage(
    tmp_path: Path,
) -> None:
    def write_file() -> None:
        (tmp_path / "hello.txt").write_text("hello\n")

    script: list[Step] = [
        thinking_delta("I should write the file."),
        block_start(),
        text_delta("Writing "),
        text_delta("it."),
        block_start("tool_use"),
        tool_use("tu_1", "Write", {"file_path": str(tmp_path / "hello.txt"), "content": "hi"}),
        write_file,
        tool_result("tu_1", "File created"),
        block_start(),
        text_delta("Done."),
        result(input_tokens=30, output_tokens=7, cost=0.02),
    ]
    runner, process, _ = runner_over(script, tmp_path)
    events = await events_of(runner)

    assert kinds(events) == [
        "reasoning_delta",
        "text_delta",
        "text_delta",
        "tool_use",
        "tool_result",
        "file_change",
        "text_delta",
        "text_delta",
        "usage",
    ]
    # Text of successive model calls is kept apart.
    assert text(events) == "Writing it.\n\nDone."
    assert events[3].tool_use.summary == "Write hello.txt"
    change = events[5].file_change
    assert change.path == "hello.txt" and change.kind == ev.FILE_CHANGE_KIND_CREATED
    assert [c.path for c in runner.changed] == ["hello.txt"]
    assert events[-1].usage.input_tokens == 30 and events[-1].usage.cost_usd == 0.02
    assert runner.first_text_at is not None
    # The prompt went in as one user message of the session.
    (sent,) = process.client.prompts
    assert sent["session_id"] == "s-1"
    assert sent["message"]["content"] == [{"type": "text", "text": "write hello.txt"}]
    assert process.client.models == []
    ending = outcome.ending_of(runner)
    assert ending.error is None and ending.status == pb.TURN_STATUS_COMPLETED


async def test_a_stop_sequence_cuts_the_text_and_interrupts_once(tmp_path: Path) -> None:
    script: list[Step] = [
        block_start(),
        text_delta("one two TH"),
        text_delta("REE four"),
        text_delta(" five"),
        result(),
    ]
    process = FakeProcess(
        FakeClient(
            script,
            after_interrupt=[
                result(subtype="error_during_execution", is_error=True, stop_reason=None)
            ],
        )
    )
    runner, _, flag = runner_over(script, tmp_path, stops=["THREE"], process=process)
    events = await events_of(runner)

    assert text(events) == "one two "
    assert process.client.interrupts == 1
    assert runner.stop_hit and flag.cancel_requested
    # Claude Code reports the interruption as an error; the turn did not fail.
    assert runner.acc.error is not None
    ending = outcome.ending_of(runner)
    assert ending.error is None
    assert ending.finish == ev.FINISH_REASON_STOP_SEQUENCE
    assert ending.status == pb.TURN_STATUS_COMPLETED


async def test_a_cancel_request_from_outside_ends_the_turn_cancelled(tmp_path: Path) -> None:
    flag = Flag()

    def cancel_turn() -> None:
        flag.cancel_requested = True

    script: list[Step] = [
        block_start(),
        text_delta("Working"),
        cancel_turn,
        result(
            subtype="error_during_execution", is_error=True, terminal_reason="aborted_streaming"
        ),
    ]
    runner, _, _ = runner_over(script, tmp_path, flag=flag)
    await events_of(runner)

    ending = outcome.ending_of(runner)
    assert ending.error is None
    assert ending.finish == ev.FINISH_REASON_CANCELLED
    assert ending.status == pb.TURN_STATUS_CANCELLED


async def test_a_model_rate_limit_fails_the_turn_with_its_status(tmp_path: Path) -> None:
    script: list[Step] = [result(is_error=True, api_error_status=429, stop_reason=None)]
    runner, _, _ = runner_over(script, tmp_path)
    assert kinds(await events_of(runner)) == ["usage"]

    error = outcome.ending_of(runner).error
    assert error is not None and error.reason == "model_rate_limited"
    failed = outcome.failure_of(error)
    assert failed.code == 8 and failed.retry_after_seconds == 5  # RESOURCE_EXHAUSTED


async def test_a_process_that_ends_without_a_result_fails_with_its_stderr(tmp_path: Path) -> None:
    process = FakeProcess(FakeClient([block_start(), text_delta("par")]), stderr_tail=["boom"])
    runner, _, _ = runner_over([], tmp_path, process=process)
    await events_of(runner)

    error = outcome.ending_of(runner).error
    assert error is not None and error.reason == "model_error"
    assert error.message == "Claude Code ended the turn without a result: boom"


async def test_another_model_is_switched_on_the_running_process(tmp_path: Path) -> None:
    process = FakeProcess(FakeClient([result()]), shape=ProcessShape(model="claude-haiku-4-5"))
    runner, _, _ = runner_over([], tmp_path, process=process)
    await events_of(runner, model="claude-sonnet-4-5")

    assert process.client.models == ["claude-sonnet-4-5"]
    assert process.shape.model == "claude-sonnet-4-5"


async def test_a_subagents_messages_stay_out_of_the_answer(tmp_path: Path) -> None:
    inner = text_delta("subagent text")
    inner.parent_tool_use_id = "tu_task"
    script: list[Step] = [block_start(), text_delta("Main."), inner, result()]
    runner, _, _ = runner_over(script, tmp_path)

    assert text(await events_of(runner)) == "Main."


async def test_an_answer_cut_by_the_output_limit_ends_incomplete_not_failed(
    tmp_path: Path,
) -> None:
    # What Claude Code sends once it stops asking the model to go on after cut answers.
    gave_up = assistant(TextBlock("API Error: Claude's response exceeded the output maximum."))
    gave_up.error = "max_output_tokens"  # type: ignore[assignment]  # not in the SDK's Literal
    script: list[Step] = [
        block_start(),
        text_delta("A long answer that"),
        gave_up,
        result(is_error=True, stop_reason="stop_sequence", terminal_reason="api_error"),
    ]
    runner, _, _ = runner_over(script, tmp_path)
    assert text(await events_of(runner)) == "A long answer that"

    ending = outcome.ending_of(runner)
    assert ending.error is None
    assert ending.finish == ev.FINISH_REASON_LENGTH
    assert ending.status == pb.TURN_STATUS_INCOMPLETE
