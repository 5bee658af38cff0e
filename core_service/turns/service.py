"""The turn pipeline, composed: admit, plan, run, settle.

`run_turn` is the one entry for a turn: `admission` says whether it may run,
`planning` which session serves it, `running` runs it over that session's
process, and `outcome` says what happened and what is stored. The servicer
iterates the returned `TurnRun` for events and reads its outcome at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from google.protobuf import json_format

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation, file_changes, recovery
from core_service.agent.client_tools import NOT_RUN_TEXT, ToolResult, UnknownCall
from core_service.agent.options import SessionStart
from core_service.agent.process import AgentProcess
from core_service.agent.translate import TurnAccumulator
from core_service.agent.workspace_layout import WorkspaceLayout
from core_service.config import CoreConfig
from core_service.domain.turn import Turn
from core_service.errors import Cancelled, NotFound, ServiceError, Unavailable
from core_service.model_watchdog import bounded_model_stream, idle_seconds, quiet_seconds
from core_service.request_context import RequestContext
from core_service.servicers import convert
from core_service.store import SessionStore
from core_service.turns import attachments, outcome, request_usage
from core_service.turns.admission import Admissions, AdmittedTurn, Caller
from core_service.turns.outcome import TurnOutcome, TurnProgress
from core_service.turns.planning import Continue, Plan, Planner, decide
from core_service.turns.registry import ProcessRegistry
from core_service.turns.running import TurnRunner, interrupt
from core_service.turns.tool_requests import choice_note
from core_service.turns.turn_spans import tracer
from core_service.turns.waiting import (
    WaitingTurn,
    WaitingTurns,
    answer_started,
    match_results,
    results_before_message,
    too_early,
)

log = logging.getLogger("ccapi.sessions")

# What the model reads for calls abandoned after CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS.
TIMED_OUT_TEXT = "the client did not send a result for this call in time"
# How long the rest of an abandoned waiting turn may take to be read.
DRAIN_SECONDS = 30.0


class TurnRun:
    """One turn as its caller sees it: iterate it for the events; `headers`
    are known once the first event arrived, `outcome()` once iteration ended
    (however it ended: `aclose()` first when the caller stops early)."""

    def __init__(
        self, events: AsyncGenerator[pb.RunTurnResponse, None], progress: TurnProgress
    ) -> None:
        self._events = events
        self._progress = progress

    def __aiter__(self) -> AsyncIterator[pb.RunTurnResponse]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()

    @property
    def headers(self) -> dict[str, str]:
        return self._progress.headers

    def outcome(self) -> TurnOutcome:
        return self._progress.outcome()

    @property
    def accumulated(self) -> TurnAccumulator | None:
        """What Claude Code reported so far (None before the turn got a process)."""
        runner = self._progress.runner
        return runner.acc if runner is not None else None


class TurnService:
    def __init__(
        self,
        config: CoreConfig,
        admissions: Admissions,
        planner: Planner,
        registry: ProcessRegistry,
        store: SessionStore,
        layout: WorkspaceLayout,
        attached_files: attachments.Attachments | None = None,
    ) -> None:
        self._config = config
        self._admissions = admissions
        self._planner = planner
        self._registry = registry
        self._store = store
        self._layout = layout
        self._attachments = attached_files
        # Told where each turn's process came from: "pool", "live" or "started" (metrics).
        self.on_process: Callable[[str], None] = lambda source: None
        self._waiting = WaitingTurns()
        self._expiring: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._registry.start(with_pool=self._admissions.has_credentials())

    def run_turn(
        self,
        call: RequestContext,
        request: pb.RunTurnRequest,
        progress: TurnProgress | None = None,
    ) -> TurnRun:
        """`progress` is given by background turns (their id and queue notice)."""
        assert call.caller is not None, "turns run for authenticated callers"
        if progress is None:
            progress = TurnProgress(self.request_json(request), call.started)
        return TurnRun(self._events(call.caller, call, request, progress), progress)

    @staticmethod
    def request_json(request: pb.RunTurnRequest) -> str:
        return json_format.MessageToJson(request, indent=None)

    async def _events(
        self,
        caller: Caller,
        call: RequestContext,
        request: pb.RunTurnRequest,
        progress: TurnProgress,
    ) -> AsyncGenerator[pb.RunTurnResponse, None]:
        if not self._registry.accepting:
            raise Unavailable("The service is shutting down.", reason="shutting_down")
        progress.model = self._admissions.resolve_model(request)
        # A turn waiting for the client lends its concurrency slot to the request
        # that answers (or abandons) it, so a key limited to one turn can answer;
        # a refusal before this request begins gives it back (see `_settle_lent`).
        waiting = await self._waiting_for(caller, request)
        lent = waiting.lend_slot() if waiting is not None else None
        admitted: AdmittedTurn | None = None
        try:
            with tracer.start_as_current_span("turn.admission"):
                admitted = await self._admissions.admit(caller, request, progress.model, lent)
            progress.headers = admitted.headers
            attached = await self._resolve_attachments(caller, request)
            # Past the key's limits: wait (bounded) for one of the core's running slots.
            async with self._registry.capacity.slot(progress, progress.on_queued):
                if not self._registry.accepting:
                    # Shutdown began while this turn waited in the queue.
                    raise Unavailable("The service is shutting down.", reason="shutting_down")
                if waiting is not None and lent is not None:
                    await self._hand_over(waiting, lent)
                    lent = None
                if waiting is not None and waiting.alive and admitted.turn_input.tool_outputs:
                    plan = await self._continuation_plan(caller.key_id, waiting)
                else:
                    if waiting is not None:
                        await self._end_waiting(
                            waiting,
                            ended_by_message=waiting.alive,
                            results=results_before_message(
                                waiting.call_ids, admitted.turn_input.history
                            ),
                        )
                    with tracer.start_as_current_span("turn.planning"):
                        plan = await self._planner.plan(
                            caller.key_id, request, admitted.turn_input, admitted.shape
                        )
                    waiting = None
                async with (
                    self._registry.session_lock(plan.session.id),
                    # Closed here, not later by the garbage collector: an abandoned
                    # turn is wound up before its session and limits are free again.
                    contextlib.aclosing(
                        self._run(
                            caller, call, request, admitted, plan, progress, attached, waiting
                        )
                    ) as run,
                ):
                    async for event in run:
                        yield event
        finally:
            runner = progress.runner
            if waiting is not None and lent is not None:
                await self._settle_lent(waiting, lent)
            elif admitted is not None and not progress.keeps_slot:
                await self._admissions.release(
                    admitted, runner.acc.usage if runner is not None else ev.Usage()
                )

    async def _waiting_for(self, caller: Caller, request: pb.RunTurnRequest) -> WaitingTurn | None:
        """The turn waiting for the client that this request answers or abandons
        (its results validated); None if none."""
        if not len(self._waiting):
            return None
        turn_input = conversation.split(request.messages, request.instructions)
        outputs = turn_input.tool_outputs
        waiting: WaitingTurn | None = None
        if outputs:
            waiting = self._waiting.answered_by(caller.key_id, [o.call_id for o in outputs])
        if waiting is None:
            facts = await self._planner.facts(caller.key_id, request, turn_input)
            decision = decide(facts)
            if isinstance(decision, Continue):
                waiting = self._waiting.of_session(decision.session.id)
        if waiting is None or waiting.key_id != caller.key_id:
            return None
        if waiting.running:
            if outputs:
                raise too_early(waiting)
            return None  # the session lock refuses the request as busy
        if outputs and waiting.alive:
            match_results(waiting.call_ids, outputs)  # refuses before anything changes
        return waiting

    async def _hand_over(self, waiting: WaitingTurn, lent: AdmittedTurn) -> None:
        """The borrowing request begins: the slot is its own from here, and what
        the waiting turn used so far is booked."""
        waiting.lent = None
        await self._admissions.book(lent, waiting.usage)

    async def _settle_lent(self, waiting: WaitingTurn, lent: AdmittedTurn) -> None:
        """The borrowing request was refused before it began: the slot goes back
        to the turn, still waiting and answerable later (or, if it stopped
        waiting meanwhile, is released)."""
        if self._waiting.of_session(waiting.session_id) is waiting:
            waiting.slot_back()
        else:
            waiting.lent = None
            await self._admissions.release(lent, waiting.usage)

    async def _give_back_slot(self, waiting: WaitingTurn) -> None:
        if waiting.admitted is not None:
            admitted, waiting.admitted = waiting.admitted, None
            await self._admissions.release(admitted, waiting.usage)

    async def _continuation_plan(self, key_id: str, waiting: WaitingTurn) -> Plan:
        session = await asyncio.to_thread(self._store.get_session, key_id, waiting.session_id)
        if session is None:
            raise NotFound("The conversation was deleted.", reason="session_not_found")
        return Plan(
            session,
            SessionStart(session.id, resume=True, reported_cost_usd=session.reported_cost_usd),
            parent_turn_id=waiting.turn_id,
            resumed=True,
        )

    async def _end_waiting(
        self,
        waiting: WaitingTurn,
        *,
        ended_by_message: bool,
        results: dict[str, ToolResult] | None = None,
    ) -> None:
        """Ends a Claude Code turn that waits for client tools before a new user
        message (or after nobody answered): the model is stopped, the calls get
        an error result, the rest of that turn is read and dropped; the session
        and its process stay usable. `results` the message's request carried
        for the calls reach the model first, as their results; the model is
        stopped once its next answer starts (the new message supersedes it)."""
        self._waiting.remove(waiting)
        self._registry.let_go(waiting.session_id)
        await self._give_back_slot(waiting)
        if not waiting.alive:
            return
        if results:
            try:
                waiting.server.deliver(results)
            except UnknownCall:
                results = None  # a call gave up meanwhile (Claude Code's own timeout)
        stop_at_answer = bool(results)
        if not results:
            await interrupt(waiting.process)
        waiting.server.fail_pending(NOT_RUN_TEXT if ended_by_message else TIMED_OUT_TEXT)
        messages = waiting.runner.messages
        try:
            if messages is not None:
                async with asyncio.timeout(DRAIN_SECONDS):
                    async for message in messages:
                        if stop_at_answer and answer_started(message):
                            stop_at_answer = False
                            await interrupt(waiting.process)
        except (Exception, TimeoutError):
            log.warning(
                "a waiting turn did not end cleanly", extra={"session_id": waiting.session_id}
            )
            await self._registry.retire(waiting.process)
        waiting.process.last_used = time.monotonic()

    def _on_call_timeout(self, waiting: WaitingTurn) -> None:
        """A call waited CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS: the turn is interrupted."""
        if self._waiting.of_session(waiting.session_id) is not waiting:
            return
        loop = asyncio.get_running_loop()
        # While a RunTurn reads the turn it sees the interruption itself.
        task = loop.create_task(
            interrupt(waiting.process) if waiting.running else self._expire(waiting)
        )
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, waiting: WaitingTurn) -> None:
        with contextlib.suppress(Exception):
            async with self._registry.session_lock(waiting.session_id):
                await self._end_waiting(waiting, ended_by_message=False)

    async def _run(
        self,
        caller: Caller,
        call: RequestContext,
        request: pb.RunTurnRequest,
        admitted: AdmittedTurn,
        plan: Plan,
        progress: TurnProgress,
        attached: list[attachments.Attached],
        waiting: WaitingTurn | None = None,
    ) -> AsyncGenerator[pb.RunTurnResponse, None]:
        started = time.monotonic()
        shape = admitted.shape
        turn = outcome.new_turn(
            request,
            plan.session.id,
            plan.parent_turn_id,
            shape.model,
            turn_id=progress.turn_id,
            background=progress.background,
        )
        if waiting is None and plan.pooled is not None:
            # Adopted at once: from here the session owns it (and the live cap
            # counts it there), whatever happens next.
            self._registry.adopt(plan.session.id, plan.pooled)
        self._registry.claim(turn.id)
        try:
            # Where the request came from goes with the turn: a core that dies
            # mid-turn leaves what recovery needs to write its request-log row.
            await asyncio.to_thread(
                self._store.start_turn,
                turn,
                caller.key_id,
                request.store,
                call.endpoint,
                call.request_id,
            )
            if waiting is not None:
                process, source = waiting.process, "live"
            else:
                live = plan.session.id in self._registry.live_sessions()
                source = "pool" if plan.pooled else "live" if live else "started"
                with tracer.start_as_current_span(
                    "claude.process", attributes={"ccapi.source": source}
                ):
                    process = plan.pooled or await self._registry.process_for(
                        plan.session.id, plan.session.place, shape, plan.start, turn.id
                    )
        except BaseException as error:
            # No process (at capacity, could not start, the caller left while
            # it waited): the stored turn must not stay in progress.
            self._registry.end_turn(turn.id)
            await asyncio.shield(self._end_unstarted(turn, error))
            raise
        self.on_process(source)
        running = self._registry.begin_turn(turn.id, process)
        tracker = file_changes.FileTracker(
            self._layout.workspace_path(plan.session.place.workspace),
            self._config.diff_limit_chars,
        )
        saver = recovery.TurnProgress(self._store.save_progress)
        seen = request_usage.SeenCalls()

        def on_message(message: object) -> None:
            saver.note(turn, message)
            seen.note(message)  # this request's own model calls (client-tool round trips)
        runner = TurnRunner(
            process,
            plan.session.id,
            tracker,
            running,
            list(request.options.stop),
            self._config.tool_output_excerpt_chars,
            messages=waiting.runner.messages if waiting is not None else None,
            guard=functools.partial(
                bounded_model_stream,
                idle=idle_seconds(self._config),
                quiet=quiet_seconds(self._config),
                # Retired through the registry: it holds its slot until gone.
                on_stall=functools.partial(self._registry.retire, process, True),
            ),
            # Usage so far is stored as it comes, for crash recovery.
            on_message=on_message,
            structured=bool(shape.output_format),
        )
        progress.session_id, progress.turn, progress.runner = plan.session.id, turn, runner
        if waiting is None and process.client_tools is not None:
            waiting = WaitingTurn(
                caller.key_id,
                plan.session.id,
                turn.id,
                process,
                process.client_tools,
                runner,
                [],
                None,
            )
            process.client_tools.on_timeout = lambda _call, w=waiting: self._on_call_timeout(w)
        if waiting is not None:
            waiting.running, waiting.turn_id, waiting.runner = True, turn.id, runner
            self._waiting.add(waiting)
        finished = False
        try:
            yield pb.RunTurnResponse(
                started=ev.TurnStarted(
                    session_id=plan.session.id,
                    turn_id=turn.id,
                    model=shape.model,
                    created_at=turn.created_at,
                    resumed=plan.resumed,
                    parent_turn_id=plan.parent_turn_id,
                )
            )
            if waiting is not None and waiting.calls:
                results = match_results(waiting.call_ids, admitted.turn_input.tool_outputs)
                events = runner.resume(lambda: waiting.server.deliver(results), waiting.call_ids)
            else:
                # Before the runner's file baseline: attached files are not the agent's.
                content = list(plan.content)
                if self._attachments is not None:
                    content = await self._attachments.aplace(
                        self._layout.workspace_path(plan.session.place.workspace),
                        plan.session.place.uid,
                        plan.session.id,
                        turn.id,
                        attached,
                        plan.content,
                    )
                note = choice_note(request)
                if note:
                    content.append(cpb.ContentPart(text=note))
                events = runner.run(content, shape.model)
            async for event in events:
                if waiting is not None and event.HasField("tool_call_done"):
                    waiting.calls = runner.client_calls  # results for these are too early
                if waiting is not None and event.HasField("usage"):
                    event.usage.CopyFrom(request_usage.less(event.usage, waiting.booked))
                yield event
            if waiting is not None:
                # One Claude Code turn over several requests: each books its share.
                runner.acc.usage = request_usage.of_request(
                    runner.acc.usage, runner.acc.result is not None, seen.usage(), waiting.booked
                )
            await self._settle(turn, runner, admitted)
            finished = True
            process.last_used = time.monotonic()
            if waiting is not None:
                self._park_or_close(waiting, runner, admitted, progress)
            # Before the last event: the call may end right after it.
            progress.completed = True
            yield pb.RunTurnResponse(
                completed=ev.TurnCompleted(
                    finish_reason=convert.finish_to_pb(turn.finish_reason),
                    text=turn.output_text,
                    reasoning=turn.reasoning,
                    usage=runner.acc.usage,
                    num_turns=runner.acc.num_turns,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    session_id=plan.session.id,
                    files=runner.changed,
                    structured_output_json=runner.acc.structured_json,
                    tool_calls=runner.stopped_for,
                )
            )
        except ServiceError as error:
            outcome.fail(turn, error)
            await asyncio.to_thread(self._store.finish_turn, turn, None, None)
            finished = True
            yield pb.RunTurnResponse(failed=outcome.failure_of(error))
            raise
        finally:
            self._registry.end_turn(turn.id)
            if waiting is not None and not progress.keeps_slot:
                self._waiting.remove(waiting)
                self._registry.let_go(waiting.session_id)
            if not finished:
                # The caller went away (or something broke) mid-turn: stop the
                # model, end the process, and record the turn as cancelled.
                await asyncio.shield(self._abandon(process, turn))

    async def _resolve_attachments(
        self, caller: Caller, request: pb.RunTurnRequest
    ) -> list[attachments.Attached]:
        if self._attachments is None:
            attachments.refuse_without_store(request.messages)
            return []
        return await self._attachments.aresolve(caller.key_id, request.messages)

    def _park_or_close(
        self,
        waiting: WaitingTurn,
        runner: TurnRunner,
        admitted: AdmittedTurn,
        progress: TurnProgress,
    ) -> None:
        """A turn that stopped for client tools keeps waiting, with its process
        and the key's slot; any other ends its waiting entry."""
        waiting.running = False
        if not runner.stopped_for:
            return
        waiting.calls = list(runner.stopped_for)
        waiting.admitted = admitted
        waiting.usage = ev.Usage()
        waiting.usage.CopyFrom(runner.acc.usage)
        request_usage.add(waiting.booked, runner.acc.usage)
        progress.keeps_slot = True
        self._registry.keep_open(waiting.session_id)

    async def _settle(self, turn: Turn, runner: TurnRunner, admitted: AdmittedTurn) -> None:
        """Stores what the turn produced and how it ended; raises when it failed."""
        acc = runner.acc
        outcome.record_output(turn, acc, runner.changed, runner.stopped_for)
        turn.completed_at = int(time.time())
        ending = outcome.ending_of(runner)
        if ending.error is not None:
            raise ending.error
        turn.finish_reason, turn.status = ending.finish, ending.status
        fingerprint = outcome.answered_fingerprint(
            admitted.turn_input, turn.output_text, runner.stopped_for
        )
        await asyncio.to_thread(
            self._store.finish_turn,
            turn,
            acc.last_assistant_uuid,
            fingerprint,
            acc.reported_total_usd,
        )

    async def _end_unstarted(self, turn: Turn, error: BaseException) -> None:
        """Stores a turn that never got a process as failed (or cancelled)."""
        if isinstance(error, ServiceError) and not isinstance(error, Cancelled):
            outcome.fail(turn, error)
        else:
            outcome.cancel(turn)
        try:
            await asyncio.to_thread(self._store.finish_turn, turn, None, None)
        except Exception:
            # Not stored at all (start_turn failed), or the database is gone:
            # recovery heals what is left in progress.
            log.warning("could not store an unstarted turn", extra={"turn_id": turn.id})

    async def _abandon(self, process: AgentProcess, turn: Turn) -> None:
        await self._registry.retire(process, interrupt_first=True)
        outcome.cancel(turn)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._store.finish_turn, turn, None, None)

    async def cancel_turn(self, caller: Caller, turn_id: str) -> Turn:
        row = await asyncio.to_thread(self._store.get_turn, caller.key_id, turn_id, False)
        if row is None:
            raise NotFound(f"No turn '{turn_id}'.", reason="turn_not_found", param="turn_id")
        if await self._registry.cancel(turn_id):
            row = await asyncio.to_thread(self._store.get_turn, caller.key_id, turn_id, False)
            assert row is not None
        return row.turn
