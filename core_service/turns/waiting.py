"""Turns that stopped for client tools: the Claude Code turn goes on waiting
in our MCP handler (`agent.client_tools`) after its RunTurn ended, until a
later RunTurn brings the results, a new user message, or nobody answers.

`WaitingTurns` holds them, one per session at most, and finds the one a
request's tool results answer by call id (the ids are Anthropic tool_use ids,
unique across sessions). `match_results` is the rule for which results a
waiting turn accepts: every pending call answered exactly once, no strangers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from claude_agent_sdk import StreamEvent

from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service.agent.client_tools import ClientToolServer, ToolResult
from core_service.agent.process import AgentProcess
from core_service.errors import Busy, InvalidArgument
from core_service.turns.admission import AdmittedTurn
from core_service.turns.running import TurnRunner

log = logging.getLogger("ccapi.sessions")


@dataclass
class WaitingTurn:
    """A Claude Code turn whose client tool calls wait for the client."""

    key_id: str
    session_id: str
    # The stored turn that stopped for the calls (the continuation's parent).
    turn_id: str
    process: AgentProcess
    server: ClientToolServer
    # Holds the SDK's still open message stream of the Claude Code turn.
    runner: TurnRunner
    calls: list[cpb.ClientToolCall]
    # The key's concurrency slot, kept while the turn waits (None once given back).
    admitted: AdmittedTurn | None
    # What the last request that parked the turn used (booked when the slot moves on).
    usage: ev.Usage = field(default_factory=ev.Usage)
    # What every request of this Claude Code turn so far booked (request_usage).
    booked: ev.Usage = field(default_factory=ev.Usage)
    # A RunTurn is streaming this turn right now (results now would be too early).
    running: bool = False
    # The key's slot while it is lent to a request that answers or abandons
    # the turn, until that request begins (or is refused and gives it back).
    lent: AdmittedTurn | None = None

    def lend_slot(self) -> AdmittedTurn | None:
        """Lends the turn's slot to the request that answers or abandons it, so a
        key limited to one turn at once can answer; None when there is none to
        lend (already lent to a request in flight, or given back)."""
        if self.lent is not None or self.admitted is None:
            return None
        self.lent, self.admitted = self.admitted, None
        return self.lent

    def slot_back(self) -> None:
        """The borrowing request was refused before it began: the turn keeps
        waiting with its slot, answerable later."""
        if self.lent is not None:
            self.admitted, self.lent = self.lent, None

    @property
    def call_ids(self) -> list[str]:
        return [c.call_id for c in self.calls]

    @property
    def alive(self) -> bool:
        return not self.process.closed


class WaitingTurns:
    def __init__(self, cap: int = 10_000) -> None:
        self._by_session: dict[str, WaitingTurn] = {}
        self._cap = cap

    def __len__(self) -> int:
        return len(self._by_session)

    def add(self, waiting: WaitingTurn) -> None:
        if len(self._by_session) >= self._cap and waiting.session_id not in self._by_session:
            raise Busy("Too many turns wait for client tool results.", reason="too_many_waiting")
        self._by_session[waiting.session_id] = waiting

    def of_session(self, session_id: str) -> WaitingTurn | None:
        return self._by_session.get(session_id)

    def remove(self, waiting: WaitingTurn) -> None:
        if self._by_session.get(waiting.session_id) is waiting:
            del self._by_session[waiting.session_id]

    def answered_by(self, key_id: str, call_ids: Sequence[str]) -> WaitingTurn | None:
        """The waiting (or still streaming) turn of this key one of the ids belongs to."""
        wanted = set(call_ids)
        for waiting in self._by_session.values():
            if waiting.key_id == key_id and wanted & set(waiting.call_ids):
                return waiting
        return None

    def all(self) -> list[WaitingTurn]:
        return list(self._by_session.values())


def match_results(
    waiting_ids: Sequence[str], outputs: Sequence[cpb.ClientToolOutput]
) -> dict[str, ToolResult]:
    """The results for the waiting calls; INVALID_ARGUMENT naming the ids when
    some are strangers or missing (duplicates are refused when the input splits)."""
    if len(outputs) == 1 and not outputs[0].call_id and len(waiting_ids) == 1:
        # A legacy function result names no call: it answers the only one.
        return {waiting_ids[0]: ToolResult(outputs[0].output, outputs[0].is_error)}
    given = {o.call_id: ToolResult(o.output, o.is_error) for o in outputs}
    unknown = [i for i in given if i not in waiting_ids]
    if unknown:
        raise InvalidArgument(
            f"No pending tool call has the id(s) {', '.join(unknown)}; "
            f"the pending calls are {', '.join(waiting_ids)}.",
            param="tool_call_id",
            reason="unknown_tool_call",
        )
    missing = [i for i in waiting_ids if i not in given]
    if missing:
        raise InvalidArgument(
            f"Results are missing for the tool call(s) {', '.join(missing)}: "
            "send one result per call of the previous answer.",
            param="tool_call_id",
            reason="missing_tool_results",
        )
    # In the order of the calls: the model reads the results in that order.
    return {i: given[i] for i in waiting_ids}


def results_before_message(
    waiting_ids: Sequence[str], history: Sequence[cpb.Message]
) -> dict[str, ToolResult]:
    """Results for the waiting calls that a request carries before its new user
    message (tool results, then a message, in one request; e.g. a client whose
    user interrupted a call and typed on). They reach the model as the calls'
    results, and the message follows; older results in the history (for other
    ids) are history only."""
    pending = set(waiting_ids)
    found: dict[str, ToolResult] = {}
    for message in history:
        if message.role != cpb.ROLE_TOOL:
            continue
        for part in message.content:
            output = part.tool_output
            if part.WhichOneof("part") == "tool_output" and output.call_id in pending:
                found[output.call_id] = ToolResult(output.output, output.is_error)
    return found


def answer_started(message: object) -> bool:
    """The main agent's next model call began (so delivered results are in its history)."""
    return (
        isinstance(message, StreamEvent)
        and message.parent_tool_use_id is None
        and message.event.get("type") == "message_start"
    )


def too_early(waiting: WaitingTurn) -> Busy:
    return Busy(
        "The turn that made these tool calls is still running; send the results "
        "after its response has ended.",
        param="tool_call_id",
        reason="tool_calls_running",
    )
