"""Outcome: what a turn's end means, and what of it is kept.

The rules: how Claude Code's result, a stop sequence and a cancel request
decide the finish reason and the stored status; when a turn counts as failed;
the fingerprint under which its answered conversation is found again; and
`TurnOutcome`, the value the turn hands back for the request log (read off
its `TurnProgress` once the turn ended).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.agent.translate import TurnAccumulator
from core_service.domain.turn import FinishReason, Turn, TurnError, TurnStatus, Usage
from core_service.errors import ModelError, ServiceError
from core_service.servicers import convert
from core_service.turns.running import TurnRunner

# Finish reasons that leave a turn other than completed.
STATUSES: Mapping[FinishReason, TurnStatus] = {
    FinishReason.CANCELLED: TurnStatus.CANCELLED,
    FinishReason.LENGTH: TurnStatus.INCOMPLETE,
    FinishReason.MAX_TURNS: TurnStatus.INCOMPLETE,
    FinishReason.BUDGET: TurnStatus.INCOMPLETE,
}


def finish_reason(reported: FinishReason, *, stop_hit: bool, cancelled: bool) -> FinishReason:
    """A stop sequence, then a cancel request, outrank what Claude Code reported."""
    if stop_hit:
        return FinishReason.STOP_SEQUENCE
    if cancelled:
        return FinishReason.CANCELLED
    return reported


def status_of(finish: FinishReason) -> TurnStatus:
    return STATUSES.get(finish, TurnStatus.COMPLETED)


def turn_error(
    acc: TurnAccumulator, *, stop_hit: bool, cancelled: bool, exit_detail: str
) -> ServiceError | None:
    """Why the turn failed, or None. A turn we stopped ourselves did not fail,
    even when Claude Code reports the interruption as an error."""
    if acc.result is None:
        return ModelError(exit_detail)
    if acc.error is not None and not stop_hit and not cancelled:
        return acc.error
    return None


@dataclass(frozen=True)
class Ending:
    """How a turn whose messages ended came out: failed (`error`), or finished."""

    error: ServiceError | None
    finish: FinishReason
    status: TurnStatus


def ending_of(runner: TurnRunner) -> Ending:
    """The rules above, applied to what the runner observed. A turn that
    stopped for client tool calls has no result yet, and did not fail."""
    if runner.stopped_for and not runner.cancelled:
        return Ending(None, FinishReason.TOOL_CALLS, TurnStatus.COMPLETED)
    stopped = {"stop_hit": runner.stop_hit, "cancelled": runner.cancelled}
    error = turn_error(runner.acc, exit_detail=runner.exit_detail(), **stopped)
    finish = finish_reason(convert.finish_from_pb(runner.acc.finish_reason), **stopped)
    return Ending(error, finish, status_of(finish))


def new_id() -> str:
    return "t" + uuid.uuid4().hex


def new_turn(
    request: pb.RunTurnRequest,
    session_id: str,
    parent_turn_id: str,
    model: str,
    turn_id: str = "",
    background: bool = False,
) -> Turn:
    """The turn as stored when it starts (a background turn brings its id)."""
    outputs: tuple[cpb.ClientToolOutput, ...] = ()
    if request.messages and request.messages[-1].role == cpb.ROLE_TOOL:
        # The results this turn brings, in the order the client sent them.
        outputs = tuple(
            p.tool_output for m in request.messages if m.role == cpb.ROLE_TOOL for p in m.content
        )
    return Turn(
        id=turn_id or new_id(),
        background=background,
        session_id=session_id,
        parent_turn_id=parent_turn_id,
        model=model,
        status=TurnStatus.IN_PROGRESS,
        created_at=int(time.time()),
        input=tuple(convert.message_from_pb(m) for m in request.messages),
        instructions=request.instructions,
        options=convert.options_from_pb(request.options),
        metadata=dict(request.metadata),
        output_format=convert.output_format_from_pb(request.output_format)
        if request.HasField("output_format")
        else None,
        client_tools=tuple(convert.client_tool_from_pb(t) for t in request.tools),
        items=tuple(convert.client_output_from_pb(o) for o in outputs),
    )


def record_output(
    turn: Turn,
    acc: TurnAccumulator,
    files: Sequence[ev.FileChange],
    client_calls: Sequence[cpb.ClientToolCall] = (),
) -> None:
    """Copies what the turn produced onto the stored turn."""
    calls = tuple(convert.client_call_from_pb(c) for c in client_calls)
    turn.files = (*turn.files, *(convert.file_from_pb(f) for f in files))
    turn.output_text = "".join(acc.text)
    turn.reasoning = "".join(acc.reasoning)
    turn.tool_uses = (*turn.tool_uses, *(convert.tool_use_from_pb(u) for u in acc.tool_uses))
    turn.tool_results = (
        *turn.tool_results,
        *(convert.tool_result_from_pb(r) for r in acc.tool_results),
    )
    turn.items = (*turn.items, *convert.items_from_pb(acc.items), *calls)
    turn.client_tool_calls = (*turn.client_tool_calls, *calls)
    turn.usage = convert.usage_from_pb(acc.usage)


def answered_fingerprint(
    turn_input: conversation.TurnInput,
    answer: str,
    client_calls: Sequence[cpb.ClientToolCall] = (),
) -> str:
    """The fingerprint of the conversation including this answer (and the
    client tool calls it made): a client that resends it as history
    continues this turn's session."""
    parts = [cpb.ContentPart(text=answer), *(cpb.ContentPart(tool_call=c) for c in client_calls)]
    answered = [
        *turn_input.history,
        *turn_input.prompt,
        cpb.Message(role=cpb.ROLE_ASSISTANT, content=parts),
    ]
    return conversation.fingerprint(answered)


def error_of(error: ServiceError) -> TurnError:
    """What a stored failed turn says of why."""
    code: grpc.StatusCode = error.code
    return TurnError(
        code=code.value[0],
        message=error.message,
        reason=error.reason,
        retry_after_seconds=error.retry_after_seconds or 0,
    )


def failure_of(error: ServiceError) -> ev.TurnFailed:
    """The failure as the stream's last event."""
    return convert.error_to_pb(error_of(error))


def fail(turn: Turn, error: ServiceError) -> None:
    turn.status, turn.error = TurnStatus.FAILED, error_of(error)
    turn.completed_at = int(time.time())


def cancel(turn: Turn) -> None:
    turn.status, turn.finish_reason = TurnStatus.CANCELLED, FinishReason.CANCELLED
    turn.completed_at = int(time.time())


@dataclass(frozen=True)
class TurnOutcome:
    """What one RunTurn call did, as far as it got; the request log's source.

    The error, if any, is the call's status, which the caller saw."""

    request_json: str
    model: str = ""
    session_id: str = ""
    turn_id: str = ""
    usage: Usage = field(default_factory=Usage)
    tools: tuple[str, ...] = ()
    files_changed: int = 0
    text: str = ""
    # Milliseconds from the call's start to the first answer text (0: none).
    ttft_ms: int = 0
    # Milliseconds the turn waited for a running slot (admission queue).
    queue_ms: int = 0
    # The final event was sent: a client that hangs up after it cancelled nothing.
    completed: bool = False
    # x-ratelimit-* metadata sent to the caller.
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class TurnProgress:
    """How far one turn got, kept by the turn itself; read once, as its outcome."""

    request_json: str
    # When the call began (time.monotonic), for the time to first text.
    call_started: float
    model: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    session_id: str = ""
    turn: Turn | None = None
    runner: TurnRunner | None = None
    completed: bool = False
    # Written by the admission queue (capacity.TurnGate).
    queue_ms: int = 0
    # The turn stopped for client tools: it waits on, keeping the key's slot.
    keeps_slot: bool = False
    # Background turns (turns/background.py): the id they were given when
    # accepted, and who hears that the turn waits in the admission queue.
    turn_id: str = ""
    background: bool = False
    on_queued: Callable[[], None] | None = None

    def outcome(self) -> TurnOutcome:
        if self.runner is None or self.turn is None:
            return TurnOutcome(
                self.request_json,
                self.model,
                self.session_id,
                headers=dict(self.headers),
                queue_ms=self.queue_ms,
            )
        acc, first_text = self.runner.acc, self.runner.first_text_at
        return TurnOutcome(
            self.request_json,
            model=self.model,
            session_id=self.session_id,
            turn_id=self.turn.id,
            usage=convert.usage_from_pb(acc.usage),
            tools=(
                *(u.name for u in acc.tool_uses),
                *(c.name for c in self.runner.client_calls),
            ),
            files_changed=len(self.turn.files),
            text="".join(acc.text),
            ttft_ms=0 if first_text is None else int((first_text - self.call_started) * 1000),
            completed=self.completed,
            headers=dict(self.headers),
            queue_ms=self.queue_ms,
        )
