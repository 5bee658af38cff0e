"""What a turn's end means: finish reasons, stored statuses, failures, and
the fingerprint under which the answered conversation is found again."""

from __future__ import annotations

import pytest

from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation
from core_service.agent.translate import TurnAccumulator
from core_service.domain.turn import FinishReason, Turn, TurnStatus
from core_service.errors import Unavailable
from core_service.turns import outcome
from tests.unit.recorded import result


def message(role: cpb.Role.ValueType, text: str) -> cpb.Message:
    return cpb.Message(role=role, content=[cpb.ContentPart(text=text)])


@pytest.mark.parametrize(
    ("reported", "stop_hit", "cancelled", "expected"),
    [
        (FinishReason.STOP, False, False, FinishReason.STOP),
        (FinishReason.LENGTH, False, False, FinishReason.LENGTH),
        (FinishReason.STOP, False, True, FinishReason.CANCELLED),
        # A stop sequence interrupts the model itself: it is not a cancel.
        (FinishReason.CANCELLED, True, True, FinishReason.STOP_SEQUENCE),
    ],
)
def test_finish_reason_precedence(
    reported: FinishReason,
    stop_hit: bool,
    cancelled: bool,
    expected: FinishReason,
) -> None:
    assert outcome.finish_reason(reported, stop_hit=stop_hit, cancelled=cancelled) == expected


@pytest.mark.parametrize(
    ("finish", "status"),
    [
        (FinishReason.STOP, TurnStatus.COMPLETED),
        (FinishReason.STOP_SEQUENCE, TurnStatus.COMPLETED),
        (FinishReason.CANCELLED, TurnStatus.CANCELLED),
        (FinishReason.LENGTH, TurnStatus.INCOMPLETE),
        (FinishReason.MAX_TURNS, TurnStatus.INCOMPLETE),
        (FinishReason.BUDGET, TurnStatus.INCOMPLETE),
    ],
)
def test_stored_status_of_each_finish_reason(finish: FinishReason, status: TurnStatus) -> None:
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
    turn = Turn(id="t-1")
    files = [ev.FileChange(path="a.txt", kind=ev.FILE_CHANGE_KIND_CREATED)]
    outcome.record_output(turn, acc, files)

    assert turn.output_text == "Answer" and turn.reasoning == "hmm"
    assert [i.type for i in turn.items] == ["text", "reasoning"]
    assert turn.used.input_tokens == 3 and [f.path for f in turn.files] == ["a.txt"]
