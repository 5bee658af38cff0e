"""Crash recovery: what a core that died mid-work left behind is finished by
a live one.

Every core process registers itself as a `CoreInstance` and renews a
heartbeat; the turns and concurrency leases it starts carry its instance id.
An instance is dead when its heartbeat lapsed, or (on the same host and pid
namespace, where we can look) its process is gone. For each dead instance a
live core, at start and then periodically:

1. replays its request-log journal (rows it accepted but had not written);
2. stores its in-progress turns as failed with reason `interrupted`, books
   their partial usage on the session and the key, and writes their
   request-log rows;
3. writes the request-log row of a turn it finished but did not log;
4. frees its concurrency leases, and forgets the instance.

Every step is conditional or keyed by a stable id, so two replicas
recovering the same instance at once do each thing once. A turn whose
instance is alive is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from core_service import request_log
from core_service.db.models import ApiKey, CoreInstance, RequestLogRecord, SessionRecord, TurnRecord
from core_service.domain import codec
from core_service.domain.turn import Turn, TurnError, TurnStatus, Usage
from core_service.limits import LimitGate
from core_service.store import IN_PROGRESS, STATUS_CODES

log = logging.getLogger("ccapi.recovery")

HEARTBEAT_SECONDS = 5.0
# Wherever it ran, an instance silent this long is dead (the pid check finds
# a dead core on this host at once; this is for other hosts).
DEAD_AFTER = timedelta(seconds=30)
RECOVER_SECONDS = 15.0
# A finished turn of a dead instance missing its request-log row can only be
# one that ended shortly before the crash; older ones are not searched.
LOG_GAP_WINDOW = timedelta(hours=24)
INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = (
    "Interrupted: the service restarted while this turn ran, so it was not finished. "
    "The conversation can go on with a new request."
)

LOST_MESSAGE = (
    "Interrupted: the turn's result could not be stored (the database refused "
    "a write), so it was not finished. The conversation can go on with a new request."
)

StatusOf = Callable[[grpc.StatusCode, str], int]


def _place() -> str:
    """Where pids mean the same thing: this host's boot and pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        boot, namespace = "", 0
    return f"{socket.gethostname()[:200]}/{boot}/{namespace}"


@dataclass(frozen=True)
class Instance:
    id: str
    host: str
    pid: int

    @classmethod
    def new(cls) -> Instance:
        return cls("core_" + secrets.token_hex(12), _place(), os.getpid())


@dataclass
class Recovered:
    """What one recovery pass did."""

    instances: int = 0
    turns: int = 0
    log_rows: int = 0
    leases: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_id_for_turn(turn_id: str, time_ms: int) -> str:
    """The same id whichever core writes the row, so it is written once."""
    digest = hashlib.sha256(turn_id.encode()).hexdigest()[:16]
    return f"log_{time_ms & 0xFFFFFFFFFFFF:012x}{digest}"


class Recovery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        gate: LimitGate,
        writer: request_log.RequestLogWriter,
        journal_dir: Path,
        instance: Instance,
        status_of: StatusOf,
        running: Callable[[], set[str]] = set,
    ) -> None:
        self._sessions = sessions
        self._gate = gate
        self._writer = writer
        self._journal_dir = journal_dir
        self.instance = instance
        self._status_of = status_of
        self._running = running
        # This core's own turns seen stored as in progress but not running.
        self._suspects: set[str] = set()

    # This instance

    def register(self) -> None:
        """Makes this instance known (a failure is logged: the heartbeat retries)."""
        try:
            self._register()
        except Exception:
            log.exception("could not register this core; the heartbeat will retry")

    def _register(self) -> None:
        now = _now()
        with self._sessions.begin() as db:
            db.merge(
                CoreInstance(
                    id=self.instance.id,
                    host=self.instance.host,
                    pid=self.instance.pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def heartbeat(self) -> None:
        with self._sessions.begin() as db:
            result = db.execute(
                update(CoreInstance)
                .where(CoreInstance.id == self.instance.id)
                .values(heartbeat_at=_now())
            )
            missing = not getattr(result, "rowcount", 1)
        if missing:
            # Another core took us for dead (a long stall): be seen again.
            log.warning("this core's instance row was gone; registering again")
            self._register()

    def unregister(self) -> None:
        """On a clean stop, once every turn has ended."""
        with self._sessions.begin() as db:
            db.execute(delete(CoreInstance).where(CoreInstance.id == self.instance.id))

    async def run_forever(self) -> None:
        """Heartbeats, and now and then recovers instances that died since."""
        since_recovery = 0.0
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await asyncio.to_thread(self.heartbeat)
            except Exception:
                log.exception("could not renew this core's heartbeat")
            since_recovery += HEARTBEAT_SECONDS
            if since_recovery >= RECOVER_SECONDS:
                since_recovery = 0.0
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.recover)
                with contextlib.suppress(Exception):
                    # Taken on the loop, where the running turns change.
                    running = self._running()
                    await asyncio.to_thread(self.heal_own, running)

    # Finding the dead

    def dead_instances(self) -> list[tuple[str, datetime | None]]:
        """(instance id, when last seen alive) of every dead instance with
        something left to recover, this one excluded."""
        now = _now()
        dead: dict[str, datetime | None] = {}
        with self._sessions() as db:
            for row in db.scalars(select(CoreInstance)).all():
                if row.id == self.instance.id:
                    continue
                seen = _aware(row.heartbeat_at)
                here = row.host == self.instance.host
                gone = here and (row.pid == self.instance.pid or not _pid_alive(row.pid))
                if gone or now - seen > DEAD_AFTER:
                    dead[row.id] = seen
            # Owners with turns still running but no instance row: a recovery
            # that stopped half-way.
            orphans = db.scalars(
                select(TurnRecord.owner)
                .where(
                    TurnRecord.status == IN_PROGRESS,
                    TurnRecord.owner.is_not(None),
                    ~exists().where(CoreInstance.id == TurnRecord.owner),
                )
                .distinct()
            ).all()
        for owner in orphans:
            if owner and owner != self.instance.id:
                dead.setdefault(owner, None)
        for owner in request_log.journal_instances(self._journal_dir):
            if owner != self.instance.id and owner not in dead and not self._alive(owner):
                dead[owner] = None
        return list(dead.items())

    def _alive(self, instance_id: str) -> bool:
        with self._sessions() as db:
            return db.get(CoreInstance, instance_id) is not None

    # Recovering

    def recover(self, legacy: bool = False) -> Recovered:
        """One pass over every dead instance; `legacy` also finishes turns
        left in progress by cores from before turns had owners."""
        done = Recovered()
        try:
            dead = self.dead_instances()
        except Exception:
            # Never fatal: the next pass tries again.
            log.exception("could not look for dead cores")
            dead = []
        for instance_id, seen in dead:
            try:
                self._recover_instance(instance_id, seen, done)
            except Exception:
                log.exception("could not recover a dead core", extra={"instance": instance_id})
        if legacy:
            try:
                done.turns += self._fail_turns(TurnRecord.owner.is_(None), None, done)
            except Exception:
                log.exception("could not finish turns left by an older core")
        if done.instances or done.turns:
            log.warning(
                "recovered after a core died",
                extra={
                    "instances": done.instances,
                    "turns_interrupted": done.turns,
                    "log_rows": done.log_rows,
                    "leases_freed": done.leases,
                },
            )
        return done

    def heal_own(self, running: set[str]) -> int:
        """Fails this core's turns stored as in progress that no longer run:
        their last write was refused (a full disk). A turn counts only when
        seen so in two passes in a row, since a turn is stored a moment
        before it is counted as running."""
        with self._sessions() as db:
            stored = set(
                db.scalars(
                    select(TurnRecord.id).where(
                        TurnRecord.owner == self.instance.id,
                        TurnRecord.status == IN_PROGRESS,
                    )
                ).all()
            )
        lost = stored - running
        healed = 0
        for turn_id in lost & self._suspects:
            if self._fail_turn(turn_id, None, LOST_MESSAGE):
                healed += 1
        self._suspects = lost - self._suspects
        return healed

    def _recover_instance(self, instance_id: str, seen: datetime | None, done: Recovered) -> None:
        done.log_rows += request_log.replay_journal(self._sessions, self._journal_dir, instance_id)
        done.turns += self._fail_turns(TurnRecord.owner == instance_id, seen, done)
        done.log_rows += self._log_finished_turns(instance_id, seen)
        done.leases += self._gate.free_leases_of(instance_id)
        with self._sessions.begin() as db:
            db.execute(delete(CoreInstance).where(CoreInstance.id == instance_id))
        done.instances += 1

    def _fail_turns(self, owned: Any, seen: datetime | None, done: Recovered) -> int:
        with self._sessions() as db:
            ids = db.scalars(
                select(TurnRecord.id).where(owned, TurnRecord.status == IN_PROGRESS)
            ).all()
        failed = 0
        for turn_id in ids:
            if self._fail_turn(turn_id, seen):
                failed += 1
        return failed

    def _fail_turn(
        self, turn_id: str, seen: datetime | None, message: str = INTERRUPTED_MESSAGE
    ) -> bool:
        """Stores the turn as failed (once, whoever gets here first), books its
        partial usage, and writes its request-log row."""
        now = _now()
        with self._sessions.begin() as db:
            row = db.get(TurnRecord, turn_id)
            if row is None or row.status != IN_PROGRESS:
                return False
            turn = codec.turn_from_json(row.turn_json)
            turn.status = TurnStatus.FAILED
            turn.error = TurnError(
                code=grpc.StatusCode.UNAVAILABLE.value[0], message=message, reason=INTERRUPTED
            )
            turn.completed_at = int(now.timestamp())
            claimed = db.execute(
                update(TurnRecord)
                .where(TurnRecord.id == turn_id, TurnRecord.status == IN_PROGRESS)
                .values(status=STATUS_CODES[turn.status], turn_json=codec.turn_to_json(turn))
            )
            if not getattr(claimed, "rowcount", 0):
                return False
            # As a turn that failed while its core lived: the session moves on
            # past it, and what it used is counted.
            session = db.get(SessionRecord, row.session_id)
            if session is not None:
                session.last_active_at = now
                session.turn_count += 1
                session.last_turn_id = turn.id
                session.model = turn.model or session.model
                session.fingerprint = None
                session.input_tokens += turn.used.input_tokens
                session.output_tokens += turn.used.output_tokens
                session.cost_usd += turn.used.cost_usd
            # Its tokens and spend count against the key's limits, as on release.
            self._gate.book(
                db,
                row.key_id,
                turn.used.input_tokens + turn.used.output_tokens,
                turn.used.cost_usd,
            )
            entry = self._entry(db, row, turn, seen, ok=False)
            entry.error = message
        self._write_row(entry)
        log.warning(
            "turn interrupted by a core that died",
            extra={"turn_id": turn_id, "session_id": row.session_id},
        )
        return True

    def _log_finished_turns(self, instance_id: str, seen: datetime | None) -> int:
        """Request-log rows for finished turns of the instance that have none:
        it died between storing the turn and logging the request."""
        since = (seen or _now()) - LOG_GAP_WINDOW
        with self._sessions() as db:
            rows = db.scalars(
                select(TurnRecord).where(
                    TurnRecord.owner == instance_id,
                    TurnRecord.status != IN_PROGRESS,
                    TurnRecord.created_at >= since,
                    ~exists().where(RequestLogRecord.turn_id == TurnRecord.id),
                )
            ).all()
            entries = []
            for row in rows:
                turn = codec.turn_from_json(row.turn_json)
                entries.append(self._entry(db, row, turn, seen, ok=True))
        return sum(self._write_row(entry) for entry in entries)

    def _entry(
        self,
        db: Session,
        row: TurnRecord,
        turn: Turn,
        seen: datetime | None,
        ok: bool,
    ) -> request_log.LogEntry:
        key = db.get(ApiKey, row.key_id)
        created = _aware(row.created_at)
        if ok:
            ended = datetime.fromtimestamp(turn.completed_at, UTC) if turn.completed_at else created
            status, outcome, error = 200, "ok", ""
            if turn.status == TurnStatus.FAILED:
                failed = turn.error or TurnError()
                code = grpc.StatusCode.UNKNOWN
                for candidate in grpc.StatusCode:
                    if candidate.value[0] == failed.code:
                        code = candidate
                status = self._status_of(code, failed.reason)
                outcome, error = "error", failed.message
            elif turn.status == TurnStatus.CANCELLED:
                status, outcome = self._status_of(grpc.StatusCode.CANCELLED, ""), "cancelled"
        else:
            ended = seen or _now()
            status = self._status_of(grpc.StatusCode.UNAVAILABLE, INTERRUPTED)
            outcome, error = "error", INTERRUPTED_MESSAGE
        time_ms = int(created.timestamp() * 1000)
        usage = turn.used
        return request_log.LogEntry(
            id=log_id_for_turn(turn.id, time_ms),
            time_ms=time_ms,
            key_id=row.key_id,
            key_name=key.name if key is not None else "",
            endpoint=row.endpoint or "grpc:/claudecode.v1.AgentService/RunTurn",
            model=turn.model,
            status=status,
            outcome=outcome,
            latency_ms=max(0, int((ended - created).total_seconds() * 1000)),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens,
            cost_usd=usage.cost_usd,
            session_id=row.session_id,
            turn_id=turn.id,
            tools_used=[u.name for u in turn.tool_uses],
            files_changed=len(turn.files),
            error=error,
            stream=True,
            request_id=row.request_id or "",
        )

    def _write_row(self, entry: request_log.LogEntry) -> int:
        """Inserts unless the turn has a row already (from a replayed journal)."""
        with self._sessions() as db:
            logged = db.scalar(
                select(RequestLogRecord.id).where(RequestLogRecord.turn_id == entry.turn_id)
            )
        if logged is not None:
            return 0
        return request_log.insert_missing(self._sessions, [self._writer.row(entry)])


class TurnProgress:
    """Keeps a running turn's stored snapshot close to what it produced, so
    crash recovery knows its tokens so far: written when Claude Code reports
    usage, at most every `every` seconds, off the turn's path."""

    def __init__(self, save: Callable[[Turn], None], every: float = 1.0) -> None:
        self._save = save
        self._every = every
        # Usage per model call (message id), the last figures reported.
        self._calls: dict[str, dict[str, Any]] = {}
        self._saved_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def note(self, turn: Turn, message: object) -> None:
        """Feed every SDK message of the turn."""
        usage = getattr(message, "usage", None)
        message_id = getattr(message, "message_id", None)
        if (
            not isinstance(usage, dict)
            or not message_id
            or getattr(message, "parent_tool_use_id", None)
        ):
            return
        self._calls[str(message_id)] = usage
        loop = asyncio.get_running_loop()
        if loop.time() - self._saved_at < self._every:
            return
        if self._task is not None and not self._task.done():
            return
        self._saved_at = loop.time()
        # A copy: the turn goes on changing while the copy is written.
        snapshot = replace(turn, usage=self.usage())
        self._task = asyncio.create_task(self._write(snapshot))

    def usage(self) -> Usage:
        calls = self._calls.values()
        return Usage(
            input_tokens=sum(int(u.get("input_tokens") or 0) for u in calls),
            output_tokens=sum(int(u.get("output_tokens") or 0) for u in calls),
            cache_read_input_tokens=sum(int(u.get("cache_read_input_tokens") or 0) for u in calls),
            cache_creation_input_tokens=sum(
                int(u.get("cache_creation_input_tokens") or 0) for u in calls
            ),
        )

    async def _write(self, snapshot: Turn) -> None:
        try:
            await asyncio.to_thread(self._save, snapshot)
        except Exception:
            log.warning("could not save a running turn's progress", exc_info=True)
