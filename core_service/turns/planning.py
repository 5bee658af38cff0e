"""Planning: which session serves a turn.

`decide` is the rule, a pure function of what the store knows (`Facts`):
an explicit session id continues that session; a previous turn (named, or
recognised from the resent history's fingerprint) continues its session when
it is that session's latest turn and forks it when the session has moved on;
anything else is a new conversation. `Planner` looks the facts up, applies
the rule, and makes the plan real (session rows, a copied workspace for a
fork, a pre-started process from the pool for a new conversation).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from core_service import conversation
from core_service.agent.client_tools import PendingCall, resumed_results_prompt
from core_service.agent.options import ProcessShape, SessionStart
from core_service.agent.pool import ProcessPool
from core_service.agent.process import AgentProcess
from core_service.agent.workspace_layout import WorkspaceLayout
from core_service.errors import InvalidArgument, NotFound
from core_service.store import SessionRow, SessionStore, TurnRow
from core_service.turns.waiting import match_results


@dataclass(frozen=True)
class Facts:
    """What the store knows that decides the session."""

    # What the request asked for.
    session_id: str = ""
    previous_turn_id: str = ""
    # The turn continued from: the named previous turn, or the one whose
    # answer ends the resent history.
    parent: TurnRow | None = None
    # The requested session, or the parent turn's session (None: not found).
    session: SessionRow | None = None


@dataclass(frozen=True)
class Continue:
    """Resume `session`: Claude Code has the conversation in its transcript."""

    session: SessionRow
    parent_turn_id: str


@dataclass(frozen=True)
class Fork:
    """Branch a new session off `session` right after `parent`."""

    session: SessionRow
    parent: TurnRow


@dataclass(frozen=True)
class StartNew:
    """A new conversation; earlier history, if any, goes in as a transcript."""


Decision = Continue | Fork | StartNew


def decide(facts: Facts) -> Decision:
    if facts.session_id:
        if facts.session is None:
            raise NotFound(
                f"No session '{facts.session_id}'.", reason="session_not_found", param="session_id"
            )
        return Continue(facts.session, facts.session.last_turn_id or "")
    if facts.previous_turn_id and facts.parent is None:
        raise NotFound(
            f"No turn '{facts.previous_turn_id}'.",
            reason="turn_not_found",
            param="previous_turn_id",
        )
    if facts.parent is None:
        return StartNew()
    if facts.session is None:
        raise NotFound(
            "The conversation of that turn was deleted.",
            reason="session_not_found",
            param="previous_turn_id",
        )
    if facts.session.last_turn_id == facts.parent.id:
        return Continue(facts.session, facts.parent.id)
    return Fork(facts.session, facts.parent)


@dataclass
class Plan:
    """A session chosen for a turn, and how its process must join it."""

    session: SessionRow
    start: SessionStart
    parent_turn_id: str = ""
    # Content sent to Claude Code for this turn.
    content: list[cpb.ContentPart] = field(default_factory=list)
    resumed: bool = False
    # A pre-started process that now serves the (new) session.
    pooled: AgentProcess | None = None


def prompt_parts(messages: list[cpb.Message]) -> list[cpb.ContentPart]:
    parts: list[cpb.ContentPart] = []
    for message in messages:
        parts.extend(message.content)
    return parts


class Planner:
    def __init__(self, store: SessionStore, layout: WorkspaceLayout, pool: ProcessPool) -> None:
        self._store = store
        self._layout = layout
        self._pool = pool

    async def plan(
        self,
        key_id: str,
        request: pb.RunTurnRequest,
        turn_input: conversation.TurnInput,
        shape: ProcessShape,
    ) -> Plan:
        facts = await self.facts(key_id, request, turn_input)
        decision = decide(facts)
        if request.fork and isinstance(decision, Continue) and facts.parent is not None:
            decision = Fork(decision.session, facts.parent)
        only_new = prompt_parts(turn_input.prompt)
        if turn_input.tool_outputs and not isinstance(decision, StartNew):
            only_new = await self._resumed_results(key_id, decision, facts, turn_input)
        if isinstance(decision, Continue):
            session = decision.session
            return Plan(
                session,
                SessionStart(session.id, resume=True),
                parent_turn_id=decision.parent_turn_id,
                content=only_new,
                resumed=True,
            )
        if isinstance(decision, Fork):
            return await self._fork(key_id, decision, shape, only_new)
        return await self._start_new(key_id, turn_input, shape)

    async def _resumed_results(
        self,
        key_id: str,
        decision: Continue | Fork,
        facts: Facts,
        turn_input: conversation.TurnInput,
    ) -> list[cpb.ContentPart]:
        """Tool results for calls no process waits for any more (the core
        restarted): the session resumes from its transcript, and the results go
        in as text naming each call (see agent.client_tools)."""
        parent = decision.parent if isinstance(decision, Fork) else facts.parent
        if parent is None and isinstance(decision, Continue) and decision.parent_turn_id:
            parent = await asyncio.to_thread(
                self._store.get_turn, key_id, decision.parent_turn_id, False
            )
        calls = list(parent.turn.client_tool_calls) if parent is not None else []
        if not calls:
            raise InvalidArgument(
                "No tool calls are pending in this conversation: send a user message.",
                param="messages",
                reason="no_pending_tool_calls",
            )
        outputs = turn_input.tool_outputs
        results = match_results([c.call_id for c in calls], outputs)
        pending = [PendingCall(c.call_id, c.name, {}) for c in calls]
        return [cpb.ContentPart(text=resumed_results_prompt(pending, results))]

    async def facts(
        self, key_id: str, request: pb.RunTurnRequest, turn_input: conversation.TurnInput
    ) -> Facts:
        store = self._store
        if request.session_id:
            session = await asyncio.to_thread(store.get_session, key_id, request.session_id)
            return Facts(session_id=request.session_id, session=session)
        parent: TurnRow | None = None
        if request.previous_turn_id:
            parent = await asyncio.to_thread(
                store.get_turn, key_id, request.previous_turn_id, False
            )
        elif turn_input.history:
            parent = await asyncio.to_thread(
                store.find_turn_by_fingerprint, key_id, conversation.fingerprint(turn_input.history)
            )
        session = (
            await asyncio.to_thread(store.get_session, key_id, parent.session_id)
            if parent is not None
            else None
        )
        return Facts(previous_turn_id=request.previous_turn_id, parent=parent, session=session)

    async def _fork(
        self, key_id: str, fork: Fork, shape: ProcessShape, content: list[cpb.ContentPart]
    ) -> Plan:
        place = await asyncio.to_thread(self._layout.copy_place, fork.session.place)
        new_id = str(uuid.uuid4())
        session = await asyncio.to_thread(
            self._store.create_session, new_id, key_id, place, shape.model, fork.session.id
        )
        start = SessionStart(new_id, fork_from=fork.session.id, resume_at=fork.parent.resume_at)
        return Plan(session, start, parent_turn_id=fork.parent.id, content=content, resumed=True)

    async def _start_new(
        self, key_id: str, turn_input: conversation.TurnInput, shape: ProcessShape
    ) -> Plan:
        content = conversation.transcript_prompt(turn_input.history, turn_input.prompt)
        pooled = self._pool.take(shape)
        if pooled is not None:
            session = await asyncio.to_thread(
                self._store.create_session, pooled.session_id, key_id, pooled.place, shape.model
            )
            return Plan(session, SessionStart(session.id), content=content, pooled=pooled)
        place = await asyncio.to_thread(self._layout.new_place)
        session = await asyncio.to_thread(
            self._store.create_session, str(uuid.uuid4()), key_id, place, shape.model
        )
        return Plan(session, SessionStart(session.id), content=content)
