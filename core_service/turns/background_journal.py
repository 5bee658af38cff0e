"""The event journal of background turns, in the database (synchronous
SQLAlchemy; callers use a thread).

A background turn's events are rows `(turn_id, idx)` written in order, so
any core sharing the database can replay them to a client that comes back:
`background_turns` says who runs the turn, how far its journal got and how
it ended; `background_events` holds the events. A journal holds at most
`max_events` rows: past that, one FULL marker is written and then only the
turn's last event (kind LAST). Rows of turns that ended longer ago than the
retention are purged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import events_pb2 as ev
from core_service.db.models import BackgroundEventRecord, BackgroundTurnRecord, CoreInstance
from core_service.db.models import TurnRecord as StoredTurn
from core_service.domain import codec
from core_service.domain.turn import FinishReason, Turn, TurnStatus
from core_service.recovery import INTERRUPTED, INTERRUPTED_MESSAGE
from core_service.servicers import convert
from core_service.store import STATUS_CODES, utcnow
from core_service.turns.outcome import status_of

# Row kinds.
EVENT, FULL, LAST = 0, 1, 2
# Job statuses are stored as the turns table's status codes.
UNFINISHED = (STATUS_CODES[TurnStatus.QUEUED], STATUS_CODES[TurnStatus.IN_PROGRESS])


@dataclass(frozen=True)
class Row:
    """One journal row: its index, kind and event (None for the FULL marker)."""

    index: int
    kind: int
    event: pb.RunTurnResponse | None


@dataclass(frozen=True)
class Job:
    """A background turn's journal entry."""

    turn_id: str
    key_id: str
    owner: str
    status: int
    event_count: int
    snapshot: Turn


def ending_turn_status(event: pb.RunTurnResponse) -> TurnStatus:
    """The status a turn's last event gives it."""
    if event.WhichOneof("event") == "completed":
        return status_of(convert.finish_from_pb(event.completed.finish_reason))
    return TurnStatus.FAILED


def ending_status(event: pb.RunTurnResponse) -> int:
    """The same as the status code a job row keeps."""
    return STATUS_CODES[ending_turn_status(event)]


def interrupted() -> ev.TurnFailed:
    return ev.TurnFailed(
        code=grpc.StatusCode.UNAVAILABLE.value[0], message=INTERRUPTED_MESSAGE, reason=INTERRUPTED
    )


def last_event_of(turn: Turn) -> pb.RunTurnResponse:
    """A stored turn's end as its last event, for a journal its core never finished."""
    if turn.status == TurnStatus.FAILED:
        failed = convert.error_to_pb(turn.error) if turn.error is not None else ev.TurnFailed()
        return pb.RunTurnResponse(failed=failed)
    return pb.RunTurnResponse(
        completed=ev.TurnCompleted(
            finish_reason=convert.finish_to_pb(turn.finish_reason),
            text=turn.output_text,
            reasoning=turn.reasoning,
            usage=convert.usage_to_pb(turn.used),
            session_id=turn.session_id,
            files=[convert.file_to_pb(f) for f in turn.files],
            tool_calls=[convert.client_call_to_pb(c) for c in turn.client_tool_calls],
        )
    )


def _fail_interrupted(turn: Turn) -> None:
    turn.status, turn.finish_reason = TurnStatus.FAILED, FinishReason.UNSPECIFIED
    turn.error = convert.error_from_pb(interrupted())
    turn.completed_at = int(utcnow().timestamp())


class Journal:
    def __init__(self, sessions: sessionmaker[Session], max_events: int) -> None:
        self._sessions = sessions
        self.max_events = max(2, max_events)

    def accept(self, turn: Turn, key_id: str, owner: str) -> None:
        """The turn is accepted: GetTurn finds it from now on."""
        with self._sessions.begin() as db:
            db.add(
                BackgroundTurnRecord(
                    turn_id=turn.id,
                    key_id=key_id,
                    owner=owner or None,
                    status=STATUS_CODES[turn.status],
                    created_at=utcnow(),
                    turn_json=codec.turn_to_json(turn),
                    event_count=0,
                    cancel_requested=False,
                )
            )

    def append(
        self, turn_id: str, rows: Sequence[Row], status: int | None, ended: Turn | None = None
    ) -> None:
        """Writes rows (indexes given by the caller, in order) and the job's new
        status; `ended` replaces the snapshot of a turn that never got a session."""
        if not rows and status is None:
            return
        with self._sessions.begin() as db:
            for row in rows:
                db.add(
                    BackgroundEventRecord(
                        turn_id=turn_id,
                        idx=row.index,
                        kind=row.kind,
                        payload=row.event.SerializeToString() if row.event is not None else b"",
                    )
                )
            values: dict[str, object] = {}
            if rows:
                values["event_count"] = rows[-1].index + 1
            if status is not None:
                values["status"] = status
                if status not in UNFINISHED:
                    values["ended_at"] = utcnow()
            if ended is not None:
                values["turn_json"] = codec.turn_to_json(ended)
            db.execute(
                update(BackgroundTurnRecord)
                .where(BackgroundTurnRecord.turn_id == turn_id)
                .values(**values)
            )

    def fail_interrupted(self, turn_id: str) -> Turn | None:
        """Stores a turn the core's shutdown stopped as failed, interrupted
        (it had been stored as cancelled); the stored turn, or None."""
        with self._sessions.begin() as db:
            row = db.get(StoredTurn, turn_id)
            if row is None:
                return None
            turn = codec.turn_from_json(row.turn_json)
            completed_at = turn.completed_at
            _fail_interrupted(turn)
            turn.completed_at = completed_at or turn.completed_at
            row.status = STATUS_CODES[turn.status]
            row.turn_json = codec.turn_to_json(turn)
            return turn

    def job(self, key_id: str, turn_id: str, unstarted: bool = False) -> Job | None:
        """The key's background turn; with `unstarted`, only one that has no
        stored turn (queued, or ended before it got a session)."""
        with self._sessions() as db:
            row = db.get(BackgroundTurnRecord, turn_id)
            if row is None or row.key_id != key_id:
                return None
            if unstarted and db.get(StoredTurn, turn_id) is not None:
                return None
            return Job(
                row.turn_id,
                row.key_id,
                row.owner or "",
                row.status,
                row.event_count,
                codec.turn_from_json(row.turn_json),
            )

    def request_cancel(self, key_id: str, turn_id: str) -> bool:
        """Asks the core running the key's unfinished turn to stop it."""
        with self._sessions.begin() as db:
            result = db.execute(
                update(BackgroundTurnRecord)
                .where(
                    BackgroundTurnRecord.turn_id == turn_id,
                    BackgroundTurnRecord.key_id == key_id,
                    BackgroundTurnRecord.status.in_(UNFINISHED),
                )
                .values(cancel_requested=True)
            )
            return bool(getattr(result, "rowcount", 0))

    def cancel_requests(self, owner: str) -> list[str]:
        """The owner's unfinished turns another core was asked to cancel."""
        with self._sessions() as db:
            return list(
                db.scalars(
                    select(BackgroundTurnRecord.turn_id).where(
                        BackgroundTurnRecord.owner == owner,
                        BackgroundTurnRecord.cancel_requested.is_(True),
                        BackgroundTurnRecord.status.in_(UNFINISHED),
                    )
                ).all()
            )

    def read(self, turn_id: str, start: int, limit: int) -> list[Row]:
        with self._sessions() as db:
            records = db.scalars(
                select(BackgroundEventRecord)
                .where(BackgroundEventRecord.turn_id == turn_id, BackgroundEventRecord.idx >= start)
                .order_by(BackgroundEventRecord.idx)
                .limit(limit)
            ).all()
            rows = []
            for r in records:
                event = None
                if r.kind != FULL:
                    event = pb.RunTurnResponse()
                    event.ParseFromString(r.payload)
                rows.append(Row(r.idx, r.kind, event))
            return rows

    def finish_orphans(
        self, own: str = "", running: set[str] | None = None, before: datetime | None = None
    ) -> int:
        """Ends the journals of background turns whose core is gone (crash
        recovery, which runs first, has stored their turns as failed): each
        gets its turn's end as its last event, so followers stop and GetTurn
        never shows them running. With `own`, also that core's turns accepted
        before `before` that it no longer runs (their last write was lost).
        Returns how many."""
        with self._sessions() as db:
            ids = list(
                db.scalars(
                    select(BackgroundTurnRecord.turn_id).where(
                        BackgroundTurnRecord.status.in_(UNFINISHED),
                        BackgroundTurnRecord.owner.is_not(None),
                        ~exists().where(CoreInstance.id == BackgroundTurnRecord.owner),
                    )
                ).all()
            )
            if own and before is not None:
                mine = db.scalars(
                    select(BackgroundTurnRecord.turn_id).where(
                        BackgroundTurnRecord.status.in_(UNFINISHED),
                        BackgroundTurnRecord.owner == own,
                        BackgroundTurnRecord.created_at < before,
                    )
                ).all()
                ids += [turn_id for turn_id in mine if turn_id not in (running or set())]
        return sum(self._finish_orphan(turn_id) for turn_id in ids)

    def _finish_orphan(self, turn_id: str) -> bool:
        with self._sessions.begin() as db:
            job = db.get(BackgroundTurnRecord, turn_id)
            if job is None or job.status not in UNFINISHED:
                return False
            stored = db.get(StoredTurn, turn_id)
            if stored is not None:
                if stored.status == STATUS_CODES[TurnStatus.IN_PROGRESS]:
                    return False  # recovery has not reached it yet: next pass
                last = last_event_of(codec.turn_from_json(stored.turn_json))
            else:
                # It never got a session: the job's own snapshot is the turn.
                snapshot = codec.turn_from_json(job.turn_json)
                _fail_interrupted(snapshot)
                job.turn_json = codec.turn_to_json(snapshot)
                last = pb.RunTurnResponse(failed=interrupted())
            db.add(
                BackgroundEventRecord(
                    turn_id=turn_id,
                    idx=job.event_count,
                    kind=LAST,
                    payload=last.SerializeToString(),
                )
            )
            job.event_count += 1
            job.status = ending_status(last)
            job.ended_at = utcnow()
            return True

    def purge_ended_before(self, before: datetime) -> int:
        """Forgets journals of turns that ended before `before`."""
        with self._sessions.begin() as db:
            ids = db.scalars(
                select(BackgroundTurnRecord.turn_id).where(BackgroundTurnRecord.ended_at < before)
            ).all()
            if ids:
                db.execute(
                    delete(BackgroundEventRecord).where(BackgroundEventRecord.turn_id.in_(ids))
                )
                db.execute(
                    delete(BackgroundTurnRecord).where(BackgroundTurnRecord.turn_id.in_(ids))
                )
            return len(ids)
