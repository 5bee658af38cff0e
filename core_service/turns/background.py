"""Background turns (the Responses API's `background: true`): the core runs
the turn with no caller attached and journals its events, so a client can
leave and come back.

`start` hands the turn to a task the core owns and answers once the turn is
accepted: waiting in the admission queue (QUEUED) or started (IN_PROGRESS).
The key's limits and the queue's bounds refuse it there, as they would a
RunTurn; an accepted turn counts in the same caps (the key's concurrency,
the running slots and the queue) as any other, so nothing else bounds the
tasks. Its events go to the journal (`background_journal`) in order,
consecutive deltas merged within a flush (every `FLUSH_SECONDS`); `events`
replays a journal and follows it, on any core sharing the database (this
core's own turns wake followers at once, others are polled). `cancel` stops a
turn this core runs, queued or running. A turn whose core died is ended in
its journal by `sweep` (after crash recovery stored it as failed), so no
background turn stays in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from core_service.domain.turn import Turn, TurnStatus
from core_service.errors import Cancelled, InvalidArgument, NotFound, ServiceError
from core_service.request_context import RequestContext, final_status
from core_service.servicers import convert
from core_service.store import STATUS_CODES, SessionStore
from core_service.turns import outcome
from core_service.turns.background_journal import (
    EVENT,
    FULL,
    LAST,
    UNFINISHED,
    Journal,
    Row,
    ending_status,
    ending_turn_status,
    interrupted,
)
from core_service.turns.outcome import TurnProgress
from core_service.turns.registry import ProcessRegistry
from core_service.turns.service import TurnService

log = logging.getLogger("ccapi.background")

# How long events gather before they are written (and deltas merged).
FLUSH_SECONDS = 0.05
# How often a follower looks for new events of a turn another core runs.
POLL_SECONDS = 0.25
# How often a follower of an idle journal checks that it still exists.
EXISTS_CHECK_SECONDS = 5.0
READ_BATCH = 500
SWEEP_SECONDS = 15.0
# A write of the journal that failed is tried again this many times.
WRITE_ATTEMPTS = 3
CANCEL_WAIT_SECONDS = 10.0
# How often a core looks for cancels of its turns that reached another core.
CANCEL_POLL_SECONDS = 0.5

LogTurn = Callable[[RequestContext, grpc.StatusCode, str, str], None]


@dataclass(frozen=True)
class BackgroundLimits:
    # Journal rows per turn at most (CCAPI_BACKGROUND_MAX_EVENTS).
    max_events: int = 20_000
    # Journals are kept this long after their turn ended
    # (CCAPI_BACKGROUND_RETENTION_SECONDS).
    retention_seconds: float = 86_400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> BackgroundLimits:
        return cls(
            max_events=max(3, int(env.get("CCAPI_BACKGROUND_MAX_EVENTS") or cls.max_events)),
            retention_seconds=max(
                0.0,
                float(env.get("CCAPI_BACKGROUND_RETENTION_SECONDS") or cls.retention_seconds),
            ),
        )


def _merge(into: pb.RunTurnResponse, event: pb.RunTurnResponse) -> bool:
    """Folds `event` into the pending `into` when both are deltas of one stream."""
    kind = event.WhichOneof("event")
    if kind != into.WhichOneof("event"):
        return False
    if kind == "text_delta":
        into.text_delta.text += event.text_delta.text
        return True
    if kind == "reasoning_delta":
        into.reasoning_delta.text += event.reasoning_delta.text
        return True
    if kind == "tool_call_delta" and into.tool_call_delta.call_id == event.tool_call_delta.call_id:
        into.tool_call_delta.delta += event.tool_call_delta.delta
        return True
    return False


@dataclass
class _Job:
    """One background turn this core runs."""

    turn_id: str
    key_id: str
    max_events: int
    snapshot: Turn
    # Resolved with "queued" or "started" once accepted; an error before that.
    accepted: asyncio.Future[str]
    task: asyncio.Task[None] | None = None
    # Set once the job's row exists: only then may events be written.
    recorded: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[Row] = field(default_factory=list)
    status: int | None = None
    next_index: int = 0
    full: bool = False
    started: bool = False
    done: bool = False
    interrupted: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Replaced (and the old one set) after each write: followers here wake up.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def signal(self, stage: str) -> None:
        if not self.accepted.done():
            self.accepted.set_result(stage)

    def add(self, event: pb.RunTurnResponse) -> None:
        if self.full:
            return
        last = self.pending[-1] if self.pending else None
        if last is not None and last.event is not None and _merge(last.event, event):
            return
        if self.next_index >= self.max_events - 2:
            # Room is left for the marker and the last event.
            self.pending.append(Row(self.next_index, FULL, None))
            self.full = True
        else:
            self.pending.append(Row(self.next_index, EVENT, event))
        self.next_index += 1
        self.wake.set()

    def add_last(self, event: pb.RunTurnResponse) -> None:
        self.pending.append(Row(self.next_index, LAST, event))
        self.next_index += 1
        self.status = ending_status(event)
        self.done = True
        self.wake.set()


class BackgroundTurns:
    def __init__(
        self,
        turns: TurnService,
        registry: ProcessRegistry,
        store: SessionStore,
        journal: Journal,
        log_turn: LogTurn,
        limits: BackgroundLimits,
    ) -> None:
        self._turns = turns
        self._registry = registry
        self._store = store
        self._journal = journal
        self._log_turn = log_turn
        self.limits = limits
        self._jobs: dict[str, _Job] = {}

    # Starting

    async def start(
        self, call: RequestContext, request: pb.RunTurnRequest
    ) -> tuple[Turn, dict[str, str]]:
        """Starts the turn detached; returns it once accepted (QUEUED or
        IN_PROGRESS), with the key's rate-limit metadata."""
        assert call.caller is not None, "turns run for authenticated callers"
        if not request.store:
            raise InvalidArgument(
                "A background turn must be stored (store=true): it is retrieved later.",
                param="store",
            )
        turn_id = outcome.new_id()
        progress = TurnProgress(
            TurnService.request_json(request), call.started, turn_id=turn_id, background=True
        )
        snapshot = outcome.new_turn(
            request, "", request.previous_turn_id, "", turn_id=turn_id, background=True
        )
        snapshot.status = TurnStatus.QUEUED
        loop = asyncio.get_running_loop()
        job = _Job(
            turn_id, call.caller.key_id, self._journal.max_events, snapshot, loop.create_future()
        )
        # Read here, or by nobody when the caller left first (no warning then).
        job.accepted.add_done_callback(lambda f: f.cancelled() or f.exception())
        progress.on_queued = lambda: job.signal("queued")
        self._jobs[turn_id] = job
        job.task = asyncio.create_task(self._run(job, call, request, progress))
        try:
            # A refusal (limits, a full queue, ...) is raised here; the job then
            # winds itself up.
            stage = await asyncio.shield(job.accepted)
        except asyncio.CancelledError:
            job.task.cancel()  # the caller left before it was accepted: nobody knows its id
            raise
        snapshot.model = progress.model
        if stage == "started" and progress.turn is not None:
            # A copy: the running turn goes on changing.
            snapshot = job.snapshot = dataclasses.replace(progress.turn)
        try:
            await asyncio.to_thread(self._journal.accept, snapshot, job.key_id, self._store.owner)
        except BaseException:
            job.task.cancel()
            raise
        # From here the turn writes its own request-log row when it ends.
        call.reply.detached = True
        job.recorded.set()
        return snapshot, dict(progress.headers)

    async def _run(
        self,
        job: _Job,
        call: RequestContext,
        request: pb.RunTurnRequest,
        progress: TurnProgress,
    ) -> None:
        run = self._turns.run_turn(call, request, progress)
        writer = asyncio.create_task(self._write_forever(job))
        last: pb.RunTurnResponse | None = None
        try:
            async for event in run:
                kind = event.WhichOneof("event")
                if kind == "started":
                    job.started = True
                    job.status = STATUS_CODES[TurnStatus.IN_PROGRESS]
                    job.signal("started")
                if kind in ("completed", "failed"):
                    last = event
                    continue
                job.add(event)
        except ServiceError as error:
            last = last or pb.RunTurnResponse(failed=outcome.failure_of(error))
            if not job.accepted.done():
                job.accepted.set_exception(error)
        except asyncio.CancelledError:
            if job.interrupted:
                last = pb.RunTurnResponse(failed=interrupted())
            else:
                last = last or pb.RunTurnResponse(
                    completed=ev.TurnCompleted(finish_reason=ev.FINISH_REASON_CANCELLED)
                )
        except Exception:
            log.exception("a background turn failed", extra={"turn_id": job.turn_id})
            last = pb.RunTurnResponse(
                failed=ev.TurnFailed(
                    code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
                )
            )
        finally:
            with contextlib.suppress(BaseException):
                await run.aclose()
        if last is None:
            # The call ended with no last event (cannot happen once started).
            last = pb.RunTurnResponse(failed=interrupted())
        if job.interrupted and (
            (
                last.HasField("completed")
                and last.completed.finish_reason == ev.FINISH_REASON_CANCELLED
            )
            or (last.HasField("failed") and last.failed.reason == "shutting_down")
        ):
            # Stopped by the core's shutdown, not by the client: interrupted.
            last = pb.RunTurnResponse(failed=interrupted())
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._journal.fail_interrupted, job.turn_id)
        if not job.accepted.done():
            job.accepted.set_exception(_refusal(last))
        await self._end(job, call, last, run.outcome(), writer)

    async def _end(
        self,
        job: _Job,
        call: RequestContext,
        last: pb.RunTurnResponse,
        turn_outcome: outcome.TurnOutcome,
        writer: asyncio.Task[None],
    ) -> None:
        try:
            accepted = job.accepted.done() and job.accepted.exception() is None
            if accepted and not job.recorded.is_set():
                await job.recorded.wait()  # start() is writing the turn's row
            if not job.recorded.is_set():
                writer.cancel()
                return  # never accepted: the caller got the error
            if not job.started:
                # No session, so no stored turn: the job's snapshot says how it ended.
                job.snapshot.status = ending_turn_status(last)
                job.snapshot.completed_at = int(time.time())
                if last.HasField("failed"):
                    job.snapshot.error = convert.error_from_pb(last.failed)
                else:
                    job.snapshot.finish_reason = convert.finish_from_pb(
                        last.completed.finish_reason
                    )
            job.add_last(last)
            await writer
            call.reply.report(turn_outcome)
            code, message, reason = final_status(last) or (grpc.StatusCode.UNKNOWN, "", "")
            self._log_turn(call, code, reason, message)
        except Exception:
            log.exception("could not end a background turn", extra={"turn_id": job.turn_id})
        finally:
            self._jobs.pop(job.turn_id, None)
            job.changed.set()

    async def _write_forever(self, job: _Job) -> None:
        """The job's one writer: gathers events for FLUSH_SECONDS, writes them."""
        await job.recorded.wait()
        written_status: int | None = None
        while True:
            await job.wake.wait()
            if not job.done:
                await asyncio.sleep(FLUSH_SECONDS)
            job.wake.clear()
            rows, job.pending = job.pending, []
            status = job.status if job.status != written_status else None
            ended = job.snapshot if job.done and not job.started else None
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await asyncio.to_thread(self._journal.append, job.turn_id, rows, status, ended)
                    break
                except Exception:
                    log.warning(
                        "could not write a background turn's events",
                        extra={"turn_id": job.turn_id, "attempt": attempt + 1},
                        exc_info=True,
                    )
                    await asyncio.sleep(0.5 * (attempt + 1))
            written_status = job.status
            changed, job.changed = job.changed, asyncio.Event()
            changed.set()
            if job.done and not job.pending:
                return

    # Reading

    async def snapshot(self, key_id: str, turn_id: str) -> Turn | None:
        """A background turn that has no stored turn (queued, or ended before it
        got a session), as its journal keeps it; None when there is none."""
        job = await asyncio.to_thread(self._journal.job, key_id, turn_id, True)
        return job.snapshot if job is not None else None

    async def events(
        self, key_id: str, turn_id: str, start: int
    ) -> AsyncIterator[pb.StreamTurnEventsResponse]:
        """The turn's journal from `start`, then its new events, to its last one."""
        if await asyncio.to_thread(self._journal.job, key_id, turn_id) is None:
            raise NotFound(
                f"No background turn '{turn_id}' (or its events are no longer kept).",
                reason="turn_not_found",
                param="turn_id",
            )
        position = max(0, start)
        idle = 0.0
        while True:
            local = self._jobs.get(turn_id)
            changed = local.changed if local is not None else None
            rows = await asyncio.to_thread(self._journal.read, turn_id, position, READ_BATCH)
            for row in rows:
                yield pb.StreamTurnEventsResponse(
                    index=row.index, event=row.event, journal_full=row.kind == FULL
                )
                position = row.index + 1
                if row.kind == LAST:
                    return
            if len(rows) == READ_BATCH:
                continue
            idle = 0.0 if rows else idle + POLL_SECONDS
            if idle >= EXISTS_CHECK_SECONDS:
                idle = 0.0
                if await asyncio.to_thread(self._journal.job, key_id, turn_id) is None:
                    return  # purged meanwhile
            if changed is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), EXISTS_CHECK_SECONDS)
            else:
                await asyncio.sleep(POLL_SECONDS)

    # Stopping

    async def cancel(self, key_id: str, turn_id: str) -> Turn | None:
        """Stops a background turn and returns it as it ended (unchanged when
        it had ended); None when it is not a background turn of this key.
        Another core's turn is stopped by that core, told through the database."""
        job = self._jobs.get(turn_id)
        if job is not None and job.key_id == key_id and job.task is not None:
            await self._cancel_here(job)
        else:
            stored = await asyncio.to_thread(self._journal.job, key_id, turn_id)
            if stored is None:
                return None
            if await asyncio.to_thread(self._journal.request_cancel, key_id, turn_id):
                deadline = time.monotonic() + CANCEL_WAIT_SECONDS
                while time.monotonic() < deadline:
                    await asyncio.sleep(POLL_SECONDS)
                    now = await asyncio.to_thread(self._journal.job, key_id, turn_id)
                    if now is None or now.status not in UNFINISHED:
                        break
        row = await asyncio.to_thread(self._store.get_turn, key_id, turn_id, False)
        return row.turn if row is not None else await self.snapshot(key_id, turn_id)

    async def _cancel_here(self, job: _Job) -> None:
        assert job.task is not None
        if not await self._registry.cancel(job.turn_id):
            # Not on a process yet (queued, or starting one): the task stops.
            job.task.cancel()
        await asyncio.wait({job.task}, timeout=CANCEL_WAIT_SECONDS)

    async def watch_cancels_forever(self) -> None:
        """Stops this core's background turns that a cancel on another core asked for."""
        stopping: set[str] = set()
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            if not self._jobs:
                continue
            try:
                asked = await asyncio.to_thread(self._journal.cancel_requests, self._store.owner)
            except Exception:
                log.warning("could not look for cancel requests", exc_info=True)
                continue
            for turn_id in asked:
                job = self._jobs.get(turn_id)
                if job is None or job.task is None or turn_id in stopping:
                    continue
                stopping.add(turn_id)
                task = asyncio.create_task(self._cancel_here(job))
                task.add_done_callback(functools.partial(_forget, stopping, turn_id))

    def stopping(self) -> None:
        """Shutdown begins: a background turn it stops ends failed
        (interrupted), not cancelled, as after a crash."""
        for job in self._jobs.values():
            job.interrupted = True

    async def stop(self) -> None:
        """At shutdown, after running turns had their grace: what is left
        (queued turns) ends as interrupted."""
        tasks = []
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                if not job.started:
                    job.interrupted = True
                    job.task.cancel()
                # Started ones were interrupted by the registry; they write their end.
                tasks.append(job.task)
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_SECONDS)

    # Upkeep

    def sweep(self, running: set[str] | None = None, before: datetime | None = None) -> None:
        """Ends the journals of dead cores' turns, and of this core's own turns
        accepted before `before` that are not `running` (their end could not be
        written); forgets expired journals."""
        ended = self._journal.finish_orphans(self._store.owner, running, before)
        if ended:
            log.warning("background turns of a dead core ended", extra={"turns": ended})
        before = datetime.fromtimestamp(time.time() - self.limits.retention_seconds, UTC)
        self._journal.purge_ended_before(before)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            # Taken on the loop, where jobs come and go.
            running, now = set(self._jobs), datetime.now(UTC)
            try:
                await asyncio.to_thread(self.sweep, running, now)
            except Exception:
                log.exception("background sweep failed")


def _refusal(last: pb.RunTurnResponse) -> ServiceError:
    """The error a turn that ended before it was accepted gives its caller
    (its own error was raised to `start` already; this is the fallback)."""
    if last.HasField("failed"):
        error = ServiceError(last.failed.message or "The turn failed.", reason=last.failed.reason)
        codes = {code.value[0]: code for code in grpc.StatusCode}
        error.code = codes.get(last.failed.code, grpc.StatusCode.INTERNAL)
        return error
    return Cancelled("The turn was cancelled before it started.")


def _forget(ids: set[str], turn_id: str, _task: asyncio.Task[None]) -> None:
    ids.discard(turn_id)
