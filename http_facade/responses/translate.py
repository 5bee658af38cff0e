"""Responses API <-> claudecode.v1, both directions: the public names in one place.

Each idea lives in its own module: ``request`` (create requests -> RunTurnRequest),
``echo`` (request parameters a response repeats), ``outcome`` (status, usage,
error), ``state`` (the stream/object state machine) and ``stored`` (stored turns
as objects and input items). Import from here or from those modules alike.
"""

from __future__ import annotations

from .echo import Echo
from .outcome import FINAL_EVENT, error_dict, incomplete_details, status_of, usage_dict
from .protocol import PREFIX
from .request import (
    ENDPOINT,
    builtin_tools_of,
    for_responses,
    not_found,
    to_run_turn_request,
    turn_id_of,
    validate_request,
)
from .state import COMMENTARY, FINAL_ANSWER, Event, ResponseState, output_text
from .stored import from_turn, input_items, page

__all__ = [
    "COMMENTARY",
    "ENDPOINT",
    "FINAL_ANSWER",
    "FINAL_EVENT",
    "PREFIX",
    "Echo",
    "Event",
    "ResponseState",
    "builtin_tools_of",
    "error_dict",
    "for_responses",
    "from_turn",
    "incomplete_details",
    "input_items",
    "not_found",
    "output_text",
    "page",
    "status_of",
    "to_run_turn_request",
    "turn_id_of",
    "usage_dict",
    "validate_request",
]
