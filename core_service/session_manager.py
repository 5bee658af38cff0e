"""The session manager owns Claude Code sessions: which process serves a
conversation, one turn at a time per session, forks, cancellation, idle
reaping and shutdown. Servicers only decode, call this, and encode."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from core_service import conversation, request_context, workspace_files
from core_service.agent.options import ProcessShape, SessionStart, same_process
from core_service.agent.pool import ProcessPool
from core_service.agent.process import AgentProcess, ProcessFactory
from core_service.agent.translate import TurnAccumulator, TurnTranslator
from core_service.agent.workspace import WorkspaceLayout
from core_service.config import CoreConfig
from core_service.errors import (
    Busy,
    FailedPrecondition,
    InvalidArgument,
    ModelError,
    NotFound,
    ServiceError,
    Unavailable,
)
from core_service.keys import KeyInfo
from core_service.limits import Admission, LimitGate
from core_service.model_catalog import ModelCatalog
from core_service.model_watchdog import bounded_model_stream, end_process, idle_seconds
from core_service.recovery import TurnProgress
from core_service.store import SessionRow, SessionStore, TurnRow

log = logging.getLogger("ccapi.sessions")

CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
INTERRUPT_TIMEOUT_SECONDS = 2.0
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "minimal": "low", "none": "low"}


@dataclass(frozen=True)
class Caller:
    """Who runs the turn: the authenticated key and its tool policy."""

    key_id: str
    allowed_tools: tuple[str, ...] | None = None
    key: KeyInfo | None = None


@dataclass
class RunningTurn:
    process: AgentProcess
    cancel_requested: bool = False


@dataclass
class _Plan:
    """A session chosen for a turn, and how its process must join it."""

    session: SessionRow
    start: SessionStart
    parent_turn_id: str = ""
    # Content sent to Claude Code for this turn.
    content: list[cpb.ContentPart] = field(default_factory=list)
    resumed: bool = False


class SessionManager:
    def __init__(
        self,
        config: CoreConfig,
        store: SessionStore,
        catalog: ModelCatalog,
        factory: ProcessFactory,
        layout: WorkspaceLayout,
        pool: ProcessPool,
        gate: LimitGate,
    ) -> None:
        self._config = config
        self._gate = gate
        self._store = store
        self._catalog = catalog
        self._factory = factory
        self._layout = layout
        self.pool = pool
        self._live: dict[str, AgentProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: dict[str, RunningTurn] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._accepting = True

    # Lifecycle

    def start(self) -> None:
        if self.has_credentials():
            self.pool.start()
        self._reaper = asyncio.create_task(self._reap_idle_forever())

    def has_credentials(self) -> bool:
        return any(self._config.claude_env.get(name) for name in CREDENTIAL_VARS)

    @property
    def running_turns(self) -> int:
        return len(self._running)

    def running_turn_ids(self) -> set[str]:
        return set(self._running)

    async def shutdown(self, grace_seconds: float) -> None:
        """Lets running turns finish for `grace_seconds`, then interrupts them,
        and ends every Claude Code process."""
        self._accepting = False
        deadline = time.monotonic() + grace_seconds
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for running in list(self._running.values()):
            running.cancel_requested = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    running.process.client.interrupt(), INTERRUPT_TIMEOUT_SECONDS
                )
        if self._reaper is not None:
            self._reaper.cancel()
        await self.pool.close()
        live, self._live = list(self._live.values()), {}
        await asyncio.gather(*(p.close() for p in live))

    # Turns

    async def run_turn(
        self, caller: Caller, request: pb.RunTurnRequest
    ) -> AsyncIterator[pb.RunTurnResponse]:
        if not self._accepting:
            raise Unavailable("The service is shutting down.", reason="shutting_down")
        if not self.has_credentials():
            raise FailedPrecondition(
                "Claude credentials are not configured: set ANTHROPIC_API_KEY or "
                "CLAUDE_CODE_OAUTH_TOKEN for the core service.",
                reason="missing_credentials",
            )
        model = self._catalog.resolve(request.model or "sonnet")
        record = request_context.current()
        if record is not None:
            record.model = model.id
            record.stream = True
            record.request_body = json_format.MessageToJson(request, indent=None)
        turn_input = conversation.split(request.messages, request.instructions)
        shape = ProcessShape(
            model=model.id,
            system_append=turn_input.system_append,
            max_output_tokens=max(0, request.options.max_output_tokens),
            effort=self._effort(request.options.reasoning_effort),
            allowed_tools=caller.allowed_tools,
        )
        admission: Admission | None = None
        if caller.key is not None:
            names = {request.model, model.id, *self._catalog.aliases_of(model.id)}
            self._gate.check_model(caller.key, {n for n in names if n})
            admission = await asyncio.to_thread(self._gate.admit, caller.key)
            if record is not None:
                record.headers = admission.headers
        try:
            plan, pooled = await self._plan(caller, request, turn_input, shape)
            lock = self._locks.setdefault(plan.session.id, asyncio.Lock())
            if lock.locked():
                raise Busy(
                    "This session is already running a turn; wait for it to finish.",
                    param="session_id",
                )
            async with lock:
                async for event in self._run_locked(
                    caller, request, plan, shape, pooled, turn_input
                ):
                    yield event
        finally:
            if admission is not None:
                usage = record.usage if record is not None else ev.Usage()
                tokens = usage.input_tokens + usage.output_tokens
                await asyncio.shield(
                    asyncio.to_thread(self._gate.release, admission, tokens, usage.cost_usd)
                )

    async def _run_locked(
        self,
        caller: Caller,
        request: pb.RunTurnRequest,
        plan: _Plan,
        shape: ProcessShape,
        pooled: AgentProcess | None,
        turn_input: conversation.TurnInput,
    ) -> AsyncIterator[pb.RunTurnResponse]:
        started = time.monotonic()
        record = request_context.current()
        turn = pb.Turn(
            id="t" + uuid.uuid4().hex,
            session_id=plan.session.id,
            parent_turn_id=plan.parent_turn_id,
            model=shape.model,
            status=pb.TURN_STATUS_IN_PROGRESS,
            created_at=int(time.time()),
            input=list(request.messages),
            instructions=request.instructions,
            options=request.options,
        )
        turn.metadata.update(request.metadata)
        await asyncio.to_thread(
            self._store.start_turn,
            turn,
            caller.key_id,
            request.store,
            record.endpoint if record is not None else "",
            record.request_id if record is not None else "",
        )
        progress = TurnProgress(self._store.save_progress)
        if pooled is not None:
            self._live[plan.session.id] = pooled
        process = pooled or await self._process_for(plan, shape)
        running = RunningTurn(process)
        self._running[turn.id] = running
        translator = TurnTranslator(
            list(request.options.stop), self._config.tool_output_excerpt_chars
        )
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
            if process.shape.model != shape.model:
                # The model is the one thing a running process can switch.
                await process.client.set_model(shape.model)
                process.shape = dataclasses.replace(process.shape, model=shape.model)
            tracker = workspace_files.FileTracker(
                self._layout.workspace_path(plan.session.place.workspace),
                self._config.diff_limit_chars,
            )
            await asyncio.to_thread(tracker.begin)
            log.debug(
                "claude prompt",
                extra={"session_id": plan.session.id, "prompt": repr(plan.content)[:4000]},
            )
            await process.client.query(self._prompt_stream(plan.content, plan.session.id))
            async for message in bounded_model_stream(
                process.client.receive_response(),
                idle_seconds(self._config),
                functools.partial(end_process, process),
            ):
                log.debug(
                    "claude message",
                    extra={"session_id": plan.session.id, "sdk_message": repr(message)[:4000]},
                )
                progress.note(turn, message)
                for event in translator.feed(message):
                    if record is not None and event.WhichOneof("event") == "text_delta":
                        record.mark_text()
                    yield event
                    if event.WhichOneof("event") == "tool_result":
                        # Changes are read off the workspace, so Bash edits count too.
                        for change in await asyncio.to_thread(tracker.step):
                            yield pb.RunTurnResponse(file_change=change)
                if translator.stop_hit and not running.cancel_requested:
                    # A stop sequence ended the answer: stop the model, keep the session.
                    running.cancel_requested = True
                    await self._interrupt(process)
            for event in translator.flush():
                yield event
            for change in await asyncio.to_thread(tracker.step):
                yield pb.RunTurnResponse(file_change=change)
            turn.files.extend(await asyncio.to_thread(tracker.total))
            acc = translator.acc
            turn.output_text = "".join(acc.text)
            turn.reasoning = "".join(acc.reasoning)
            turn.tool_uses.extend(acc.tool_uses)
            turn.tool_results.extend(acc.tool_results)
            turn.items.extend(acc.items)
            turn.usage.CopyFrom(acc.usage)
            turn.completed_at = int(time.time())
            if acc.result is None:
                raise ModelError(self._exit_detail(process))
            if acc.error is not None and not translator.stop_hit and not running.cancel_requested:
                raise acc.error
            finish = acc.finish_reason
            if translator.stop_hit:
                finish = ev.FINISH_REASON_STOP_SEQUENCE
            elif running.cancel_requested:
                finish = ev.FINISH_REASON_CANCELLED
            turn.finish_reason = finish
            statuses: dict[ev.FinishReason.ValueType, pb.TurnStatus.ValueType] = {
                ev.FINISH_REASON_CANCELLED: pb.TURN_STATUS_CANCELLED,
                ev.FINISH_REASON_LENGTH: pb.TURN_STATUS_INCOMPLETE,
                ev.FINISH_REASON_MAX_TURNS: pb.TURN_STATUS_INCOMPLETE,
                ev.FINISH_REASON_BUDGET: pb.TURN_STATUS_INCOMPLETE,
            }
            turn.status = statuses.get(finish, pb.TURN_STATUS_COMPLETED)
            answered = (
                list(turn_input.history)
                + list(turn_input.prompt)
                + [
                    cpb.Message(
                        role=cpb.ROLE_ASSISTANT, content=[cpb.ContentPart(text=turn.output_text)]
                    )
                ]
            )
            fingerprint = conversation.fingerprint(answered)
            await asyncio.to_thread(
                self._store.finish_turn, turn, acc.last_assistant_uuid, fingerprint
            )
            finished = True
            process.last_used = time.monotonic()
            if record is not None:
                # Filled before the last event: the call may end right after it.
                record.completed = True
                self._fill_record(record, plan.session.id, turn, translator.acc)
            yield pb.RunTurnResponse(
                completed=ev.TurnCompleted(
                    finish_reason=finish,
                    text=turn.output_text,
                    reasoning=turn.reasoning,
                    usage=acc.usage,
                    num_turns=acc.num_turns,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    session_id=plan.session.id,
                    files=turn.files,
                )
            )
        except ServiceError as error:
            turn.status = pb.TURN_STATUS_FAILED
            turn.error.CopyFrom(failure_of(error))
            turn.completed_at = int(time.time())
            await asyncio.to_thread(self._store.finish_turn, turn, None, None)
            finished = True
            yield pb.RunTurnResponse(failed=failure_of(error))
            raise
        finally:
            self._running.pop(turn.id, None)
            if record is not None:
                self._fill_record(record, plan.session.id, turn, translator.acc)
            if not finished:
                # The caller went away (or something broke) mid-turn: stop the
                # model, end the process, and record the turn as cancelled.
                await asyncio.shield(self._abandon(process, turn))

    @staticmethod
    def _fill_record(
        record: request_context.RequestRecord, session_id: str, turn: pb.Turn, acc: TurnAccumulator
    ) -> None:
        record.session_id, record.turn_id = session_id, turn.id
        record.usage = acc.usage
        record.tools = [u.name for u in acc.tool_uses]
        record.files_changed = len(turn.files)
        record.response_body = "".join(acc.text)

    async def _abandon(self, process: AgentProcess, turn: pb.Turn) -> None:
        self._live.pop(process.session_id, None)
        await self._interrupt(process)
        await process.close()
        turn.status = pb.TURN_STATUS_CANCELLED
        turn.finish_reason = ev.FINISH_REASON_CANCELLED
        turn.completed_at = int(time.time())
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._store.finish_turn, turn, None, None)

    async def _interrupt(self, process: AgentProcess) -> None:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(process.client.interrupt(), INTERRUPT_TIMEOUT_SECONDS)

    @staticmethod
    def _exit_detail(process: AgentProcess) -> str:
        tail = " ".join(process.stderr_tail)[-300:]
        return "Claude Code ended the turn without a result" + (f": {tail}" if tail else "")

    @staticmethod
    async def _prompt_stream(
        parts: list[cpb.ContentPart], session_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        yield {
            "type": "user",
            "message": {"role": "user", "content": conversation.sdk_content(parts)},
            "parent_tool_use_id": None,
            "session_id": session_id,
        }

    @staticmethod
    def _effort(value: str) -> str:
        if not value:
            return ""
        if value not in EFFORTS:
            raise InvalidArgument(
                f"reasoning_effort must be one of {', '.join(EFFORTS)}.", param="reasoning_effort"
            )
        return EFFORTS[value]

    # Choosing the session

    async def _plan(
        self,
        caller: Caller,
        request: pb.RunTurnRequest,
        turn_input: conversation.TurnInput,
        shape: ProcessShape,
    ) -> tuple[_Plan, AgentProcess | None]:
        only_new = list(conversation_parts(turn_input.prompt))
        if request.session_id:
            session = await asyncio.to_thread(
                self._store.get_session, caller.key_id, request.session_id
            )
            if session is None:
                raise NotFound(
                    f"No session '{request.session_id}'.",
                    reason="session_not_found",
                    param="session_id",
                )
            return _Plan(
                session,
                SessionStart(session.id, resume=True),
                parent_turn_id=session.last_turn_id or "",
                content=only_new,
                resumed=True,
            ), None
        parent: TurnRow | None = None
        if request.previous_turn_id:
            parent = await asyncio.to_thread(
                self._store.get_turn, caller.key_id, request.previous_turn_id, False
            )
            if parent is None:
                raise NotFound(
                    f"No turn '{request.previous_turn_id}'.",
                    reason="turn_not_found",
                    param="previous_turn_id",
                )
        elif turn_input.history:
            parent = await asyncio.to_thread(
                self._store.find_turn_by_fingerprint,
                caller.key_id,
                conversation.fingerprint(turn_input.history),
            )
        if parent is not None:
            session = await asyncio.to_thread(
                self._store.get_session, caller.key_id, parent.session_id
            )
            if session is None:
                raise NotFound(
                    "The conversation of that turn was deleted.",
                    reason="session_not_found",
                    param="previous_turn_id",
                )
            if session.last_turn_id == parent.id:
                return _Plan(
                    session,
                    SessionStart(session.id, resume=True),
                    parent_turn_id=parent.id,
                    content=only_new,
                    resumed=True,
                ), None
            return await self._fork(caller, session, parent, shape, only_new), None
        # A new conversation: earlier history (if any) goes in as a transcript.
        content = conversation.transcript_prompt(turn_input.history, turn_input.prompt)
        pooled = self.pool.take(shape)
        if pooled is not None:
            session = await asyncio.to_thread(
                self._store.create_session,
                pooled.session_id,
                caller.key_id,
                pooled.place,
                shape.model,
            )
            return _Plan(session, SessionStart(session.id), content=content), pooled
        place = await asyncio.to_thread(self._layout.new_place)
        session = await asyncio.to_thread(
            self._store.create_session, str(uuid.uuid4()), caller.key_id, place, shape.model
        )
        return _Plan(session, SessionStart(session.id), content=content), None

    async def _fork(
        self,
        caller: Caller,
        parent_session: SessionRow,
        parent: TurnRow,
        shape: ProcessShape,
        content: list[cpb.ContentPart],
    ) -> _Plan:
        place = await asyncio.to_thread(self._layout.copy_place, parent_session.place)
        new_id = str(uuid.uuid4())
        session = await asyncio.to_thread(
            self._store.create_session,
            new_id,
            caller.key_id,
            place,
            shape.model,
            parent_session.id,
        )
        start = SessionStart(new_id, fork_from=parent_session.id, resume_at=parent.resume_at)
        return _Plan(session, start, parent_turn_id=parent.id, content=content, resumed=True)

    async def _process_for(self, plan: _Plan, shape: ProcessShape) -> AgentProcess:
        """The live process for the plan's session, (re)started when needed."""
        live = self._live.get(plan.session.id)
        if live is not None and not live.closed and same_process(live.shape, shape):
            return live
        if live is not None:
            self._live.pop(plan.session.id, None)
            await live.close()
        start = plan.start
        if start.fork_from is None and not start.resume and plan.session.turn_count > 0:
            start = SessionStart(plan.session.id, resume=True)
        try:
            process = await self._factory.start(plan.session.place, shape, start)
        except Exception as error:
            log.exception("could not start Claude Code", extra={"session_id": plan.session.id})
            raise Unavailable(
                f"Claude Code could not start: {type(error).__name__}", reason="agent_unavailable"
            ) from error
        self._live[plan.session.id] = process
        return process

    # Cancel from another RPC

    async def cancel_turn(self, caller: Caller, turn_id: str) -> pb.Turn:
        row = await asyncio.to_thread(self._store.get_turn, caller.key_id, turn_id, False)
        if row is None:
            raise NotFound(f"No turn '{turn_id}'.", reason="turn_not_found", param="turn_id")
        running = self._running.get(turn_id)
        if running is not None:
            running.cancel_requested = True
            await self._interrupt(running.process)
            deadline = time.monotonic() + 5
            while turn_id in self._running and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            row = await asyncio.to_thread(self._store.get_turn, caller.key_id, turn_id, False)
            assert row is not None
        return row.turn

    # Idle processes

    async def _reap_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, max(0.5, self._config.session_idle_seconds / 4)))
            now = time.monotonic()
            for session_id, process in list(self._live.items()):
                lock = self._locks.get(session_id)
                if lock is not None and lock.locked():
                    continue
                if now - process.last_used > self._config.session_idle_seconds:
                    self._live.pop(session_id, None)
                    await process.close()

    async def close_session(self, session_id: str) -> None:
        process = self._live.pop(session_id, None)
        if process is not None:
            await process.close()

    def live_sessions(self) -> set[str]:
        return set(self._live)


def conversation_parts(messages: list[cpb.Message]) -> list[cpb.ContentPart]:
    parts: list[cpb.ContentPart] = []
    for message in messages:
        parts.extend(message.content)
    return parts


def failure_of(error: ServiceError) -> ev.TurnFailed:
    code: grpc.StatusCode = error.code
    return ev.TurnFailed(
        code=code.value[0],
        message=error.message,
        reason=error.reason,
        retry_after_seconds=error.retry_after_seconds or 0,
    )
