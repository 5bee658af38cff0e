"""What a turn's end means: finish reasons, stored statuses, failures, and
the fingerprint under which the answered conversation is found again."""

from __future__ import annotations

import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.agent.translate import TurnAccumulator
from core_service.errors import Unavailable
from core_service.turns import outcome
from tests.unit.recorded import result


def message(role: cpb.Role.ValueType, text: str) -> cpb.Message:
    return cpb.Message(role=role, content=[cpb.ContentPart(text=text)])


@pytest.mark.parametrize(
    ("reported", "stop_hit", "cancelled", "expected"),
    [
        (ev.FINISH_REASON_STOP, False, False, ev.FINISH_REASON_STOP),
        (ev.FINISH_REASON_LENGTH, False, False, ev.FINISH_REASON_LENGTH),
        (ev.FINISH_REASON_STOP, False, True, ev.FINISH_REASON_CANCELLED),
        # A stop sequence interrupts the model itself: it is not a cancel.
        (ev.FINISH_REASON_CANCELLED, True, True, ev.FINISH_REASON_STOP_SEQUENCE),
    ],
)
def test_finish_reason_precedence(
    reported: ev.FinishReason.ValueType,
    stop_hit: bool,
    cancelled: bool,
    expected: ev.FinishReason.ValueType,
) -> None:
    assert outcome.finish_reason(reported, stop_hit=stop_hit, cancelled=cancelled) == expected


@pytest.mark.parametrize(
    ("finish", "status"),
    [
        (ev.FINISH_REASON_STOP, pb.TURN_STATUS_COMPLETED),
        (ev.FINISH_REASON_STOP_SEQUENCE, pb.TURN_STATUS_COMPLETED),
        (ev.FINISH_REASON_CANCELLED, pb.TURN_STATUS_CANCELLED),
        (ev.FINISH_REASON_LENGTH, pb.TURN_STATUS_INCOMPLETE),
        (ev.FINISH_REASON_MAX_TURNS, pb.TURN_STATUS_INCOMPLETE),
        (ev.FINISH_REASON_BUDGET, pb.TURN_STATUS_INCOMPLETE),
    ],
)
def test_stored_status_of_each_finish_reason(
    finish: ev.FinishReason.ValueType, status: pb.TurnStatus.ValueType
) -> None:
    assert outcome.status_of(finish) == status


def test_a_reported_error_fails_the_turn_unless_we_stopped_it() -> None:
    acc = TurnAccumulator(result=result(), error=Unavailable("overloaded"))
    assert outcome.turn_error(acc, stop_hit=False, cancelled=False, exit_detail="") is acc.error
    assert outcome.turn_error(acc, stop_hit=True, cancelled=True, exit_detail="") is None
    assert outcome.turn_error(acc, stop_hit=False, cancelled=True, exit_detail="") is None


def test_no_result_is_a_failure_even_when_cancelled() -> None:
    error = outcome.turn_error(
        TurnAccumulator(), stop_hit=False, cancelled=True, exit_detail="it died"
    )
    assert error is not None and error.message == "it died"


def test_the_answered_fingerprint_is_the_history_a_client_resends_next() -> None:
    first = conversation.split([message(cpb.ROLE_USER, "hi")], "")
    stored = outcome.answered_fingerprint(first, "Hello!")
    # A chat UI resends the whole conversation with a new question.
    resent = conversation.split(
        [
            message(cpb.ROLE_SYSTEM, "be brief"),
            message(cpb.ROLE_USER, "hi"),
            message(cpb.ROLE_ASSISTANT, "Hello! "),
            message(cpb.ROLE_USER, "and now?"),
        ],
        "",
    )
    assert conversation.fingerprint(resent.history) == stored
    other = outcome.answered_fingerprint(first, "Hi there")
    assert other != stored


def test_record_output_keeps_what_the_turn_produced() -> None:
    acc = TurnAccumulator()
    acc.add_text("An")
    acc.add_text("swer")
    acc.add_reasoning("hmm")
    acc.usage = ev.Usage(input_tokens=3, output_tokens=2)
    turn = pb.Turn(id="t-1")
    files = [ev.FileChange(path="a.txt", kind=ev.FILE_CHANGE_KIND_CREATED)]
    outcome.record_output(turn, acc, files)

    assert turn.output_text == "Answer" and turn.reasoning == "hmm"
    assert [i.WhichOneof("item") for i in turn.items] == ["text", "reasoning"]
    assert turn.usage.input_tokens == 3 and [f.path for f in turn.files] == ["a.txt"]
