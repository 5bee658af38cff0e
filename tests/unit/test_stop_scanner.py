"""Stop sequences, found even when split across deltas, without holding back
more text than the longest sequence needs."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from core_service.agent.translate import StopScanner


def scan(stops: list[str], deltas: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(d) for d in deltas) + scanner.flush()
    return out, scanner.hit


def test_without_stops_text_passes_through_at_once() -> None:
    scanner = StopScanner([])
    assert scanner.feed("abc") == "abc" and not scanner.hit


def test_a_stop_split_across_deltas_is_found() -> None:
    assert scan(["END"], ["one E", "N", "D two"]) == ("one ", True)


def test_the_earliest_of_several_stops_wins() -> None:
    assert scan(["zz", "b"], ["a", "bczz"]) == ("a", True)


def test_only_a_possible_stop_prefix_is_held_back() -> None:
    scanner = StopScanner(["STOP"])
    # The last len("STOP") - 1 characters could begin a stop: held until flush.
    assert scanner.feed("hello") == "he"
    assert scanner.flush() == "llo"


def test_nothing_is_emitted_after_a_hit() -> None:
    scanner = StopScanner(["x"])
    assert scanner.feed("ax") == "a"
    assert scanner.feed("more") == "" and scanner.flush() == ""


@given(
    text=st.text(alphabet="abcS", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
)
def test_any_split_gives_the_text_up_to_the_first_stop(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds)]
    index = text.find("Sab")
    expected = (text, False) if index < 0 else (text[:index], True)
    assert scan(["Sab"], deltas) == expected
