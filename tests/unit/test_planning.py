"""Which session serves a turn: the planner's rule over stored facts."""

from __future__ import annotations

import pytest

from core_service.agent.workspace_layout import Place
from core_service.domain.turn import Turn
from core_service.errors import NotFound
from core_service.store import SessionRow, TurnRow
from core_service.turns.planning import Continue, Facts, Fork, StartNew, decide


def session(session_id: str = "s-1", last_turn_id: str | None = "t-2") -> SessionRow:
    return SessionRow(
        id=session_id,
        key_id="k",
        place=Place("w", "h", None),
        model="claude-sonnet-4-5",
        created_at=1,
        last_active_at=2,
        turn_count=2,
        last_turn_id=last_turn_id,
        forked_from=None,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )


def turn(turn_id: str, session_id: str = "s-1") -> TurnRow:
    return TurnRow(
        id=turn_id,
        session_id=session_id,
        key_id="k",
        resume_at=f"uuid-{turn_id}",
        turn=Turn(id=turn_id, session_id=session_id),
    )


def test_an_explicit_session_continues_after_its_latest_turn() -> None:
    decision = decide(Facts(session_id="s-1", session=session(last_turn_id="t-2")))
    assert decision == Continue(session(), "t-2")


def test_an_explicit_session_without_turns_continues_from_nothing() -> None:
    decision = decide(Facts(session_id="s-1", session=session(last_turn_id=None)))
    assert decision == Continue(session(last_turn_id=None), "")


def test_an_unknown_explicit_session_is_not_found() -> None:
    with pytest.raises(NotFound) as raised:
        decide(Facts(session_id="s-9"))
    assert raised.value.reason == "session_not_found" and raised.value.param == "session_id"


def test_the_explicit_session_wins_over_a_previous_turn() -> None:
    decision = decide(
        Facts(session_id="s-1", previous_turn_id="t-1", parent=turn("t-1"), session=session())
    )
    assert decision == Continue(session(), "t-2")


def test_the_latest_turn_of_a_session_continues_it() -> None:
    decision = decide(Facts(previous_turn_id="t-2", parent=turn("t-2"), session=session()))
    assert decision == Continue(session(), "t-2")


def test_an_earlier_turn_forks_the_session_that_moved_on() -> None:
    decision = decide(Facts(previous_turn_id="t-1", parent=turn("t-1"), session=session()))
    assert decision == Fork(session(), turn("t-1"))


def test_history_recognised_by_fingerprint_continues_or_forks_alike() -> None:
    # No previous_turn_id: the parent came from the history's fingerprint.
    assert decide(Facts(parent=turn("t-2"), session=session())) == Continue(session(), "t-2")
    assert decide(Facts(parent=turn("t-1"), session=session())) == Fork(session(), turn("t-1"))


def test_an_unknown_previous_turn_is_not_found() -> None:
    with pytest.raises(NotFound) as raised:
        decide(Facts(previous_turn_id="t-9"))
    assert raised.value.reason == "turn_not_found" and raised.value.param == "previous_turn_id"


def test_a_turn_whose_session_was_deleted_cannot_be_continued() -> None:
    with pytest.raises(NotFound) as raised:
        decide(Facts(previous_turn_id="t-1", parent=turn("t-1")))
    assert raised.value.reason == "session_not_found" and raised.value.param == "previous_turn_id"


def test_nothing_recognised_starts_a_new_conversation() -> None:
    assert decide(Facts()) == StartNew()
