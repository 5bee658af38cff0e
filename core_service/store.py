"""Session and turn records (synchronous SQLAlchemy; callers use a thread)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core_service.agent.workspace_layout import Place
from core_service.db.models import AgentUid, SessionRecord, TurnRecord
from core_service.domain import codec
from core_service.domain.session import SessionRow as SessionRow
from core_service.domain.turn import Turn, TurnStatus

# Agent uids are drawn from [base, base + UID_SPAN): far below 2**32 - 1.
UID_SPAN = 1_000_000_000

# turns.status holds these numbers (the ones it always held), for queries
# such as "every turn still in progress".
STATUS_CODES: dict[TurnStatus, int] = {
    TurnStatus.UNSPECIFIED: 0,
    TurnStatus.IN_PROGRESS: 1,
    TurnStatus.COMPLETED: 2,
    TurnStatus.FAILED: 3,
    TurnStatus.CANCELLED: 4,
    TurnStatus.INCOMPLETE: 5,
    TurnStatus.QUEUED: 50,
}
IN_PROGRESS = STATUS_CODES[TurnStatus.IN_PROGRESS]


def utcnow() -> datetime:
    return datetime.now(UTC)


def unix(value: datetime | None) -> int:
    if value is None:
        return 0
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def session_of(r: SessionRecord) -> SessionRow:
    return SessionRow(
        r.id,
        r.key_id,
        Place(r.workspace, r.home, r.uid),
        r.model,
        unix(r.created_at),
        unix(r.last_active_at),
        r.turn_count,
        r.last_turn_id,
        r.forked_from,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd,
        r.reported_cost_usd,
    )


@dataclass(frozen=True)
class TurnRow:
    id: str
    session_id: str
    key_id: str
    resume_at: str | None
    turn: Turn


class SessionStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        # The core instance whose turns this store starts (crash recovery).
        self.owner = ""

    def ping(self) -> None:
        with self._sessions() as db:
            db.execute(select(1))

    # Sessions

    def new_agent_uid(self, base: int) -> int:
        """A uid no other conversation got, across every core process. Random,
        not sequential: an agent must not be able to guess the uid of the next
        conversation (and prepare files in /tmp for it)."""
        while True:
            uid = base + secrets.randbelow(UID_SPAN)
            try:
                with self._sessions.begin() as db:
                    db.add(AgentUid(id=uid, created_at=utcnow()))
                return uid
            except IntegrityError:
                continue  # taken already; draw again

    def create_session(
        self,
        session_id: str,
        key_id: str,
        place: Place,
        model: str,
        forked_from: str | None = None,
    ) -> SessionRow:
        now = utcnow()
        row = SessionRecord(
            id=session_id,
            key_id=key_id,
            workspace=place.workspace,
            home=place.home,
            uid=place.uid,
            model=model,
            created_at=now,
            last_active_at=now,
            turn_count=0,
            forked_from=forked_from,
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            deleted=False,
        )
        with self._sessions.begin() as db:
            db.add(row)
        return session_of(row)

    def get_session(self, key_id: str, session_id: str) -> SessionRow | None:
        with self._sessions() as db:
            row = db.get(SessionRecord, session_id)
            if row is None or row.deleted or row.key_id != key_id:
                return None
            return session_of(row)

    def list_sessions(self, key_id: str, limit: int, offset: int) -> list[SessionRow]:
        with self._sessions() as db:
            rows = db.scalars(
                select(SessionRecord)
                .where(SessionRecord.key_id == key_id, SessionRecord.deleted.is_(False))
                .order_by(SessionRecord.last_active_at.desc(), SessionRecord.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [session_of(r) for r in rows]

    def list_all_sessions(self, key_id: str, limit: int, offset: int) -> list[SessionRow]:
        """Every key's sessions (admin view), newest first."""
        with self._sessions() as db:
            query = select(SessionRecord).where(SessionRecord.deleted.is_(False))
            if key_id:
                query = query.where(SessionRecord.key_id == key_id)
            rows = db.scalars(
                query.order_by(SessionRecord.last_active_at.desc(), SessionRecord.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [session_of(r) for r in rows]

    def get_any_session(self, session_id: str) -> SessionRow | None:
        with self._sessions() as db:
            row = db.get(SessionRecord, session_id)
            return session_of(row) if row is not None and not row.deleted else None

    def turns_of(self, session_id: str) -> list[Turn]:
        with self._sessions() as db:
            rows = db.scalars(
                select(TurnRecord)
                .where(TurnRecord.session_id == session_id)
                .order_by(TurnRecord.created_at)
            ).all()
            return [self._turn_row(r).turn for r in rows]

    def mark_session_deleted(self, session_id: str) -> None:
        with self._sessions.begin() as db:
            row = db.get(SessionRecord, session_id)
            if row is not None:
                row.deleted = True

    def expired_sessions(self, before: datetime) -> list[SessionRow]:
        with self._sessions() as db:
            rows = db.scalars(
                select(SessionRecord).where(
                    SessionRecord.deleted.is_(False), SessionRecord.last_active_at < before
                )
            ).all()
            return [session_of(r) for r in rows]

    # Turns

    def start_turn(
        self, turn: Turn, key_id: str, stored: bool, endpoint: str = "", request_id: str = ""
    ) -> None:
        with self._sessions.begin() as db:
            db.add(
                TurnRecord(
                    id=turn.id,
                    session_id=turn.session_id,
                    key_id=key_id,
                    parent_turn_id=turn.parent_turn_id or None,
                    status=STATUS_CODES[turn.status],
                    created_at=utcnow(),
                    stored=stored,
                    turn_json=codec.turn_to_json(turn),
                    owner=self.owner or None,
                    endpoint=endpoint[:200] or None,
                    request_id=request_id[:100] or None,
                )
            )

    def finish_turn(
        self,
        turn: Turn,
        resume_at: str | None,
        fingerprint: str | None,
        reported_cost_usd: float | None = None,
    ) -> None:
        with self._sessions.begin() as db:
            row = db.get(TurnRecord, turn.id)
            if row is None:
                return
            row.status = STATUS_CODES[turn.status]
            row.turn_json = codec.turn_to_json(turn)
            row.resume_at = resume_at
            row.fingerprint = fingerprint
            session = db.get(SessionRecord, turn.session_id)
            if session is not None:
                session.last_active_at = utcnow()
                session.turn_count += 1
                session.last_turn_id = turn.id
                session.model = turn.model
                session.fingerprint = fingerprint
                session.input_tokens += turn.used.input_tokens
                session.output_tokens += turn.used.output_tokens
                session.cost_usd += turn.used.cost_usd
                if reported_cost_usd is not None:
                    session.reported_cost_usd = reported_cost_usd

    def get_turn(self, key_id: str, turn_id: str, stored_only: bool = True) -> TurnRow | None:
        with self._sessions() as db:
            row = db.get(TurnRecord, turn_id)
            if row is None or row.key_id != key_id or (stored_only and not row.stored):
                return None
            return self._turn_row(row)

    def find_turn_by_fingerprint(self, key_id: str, fingerprint: str) -> TurnRow | None:
        with self._sessions() as db:
            row = db.scalars(
                select(TurnRecord)
                .join(SessionRecord, SessionRecord.id == TurnRecord.session_id)
                .where(
                    TurnRecord.key_id == key_id,
                    TurnRecord.fingerprint == fingerprint,
                    SessionRecord.deleted.is_(False),
                )
                .order_by(TurnRecord.created_at.desc())
                .limit(1)
            ).first()
            return self._turn_row(row) if row else None

    def delete_turn(self, key_id: str, turn_id: str) -> bool:
        with self._sessions.begin() as db:
            row = db.get(TurnRecord, turn_id)
            if row is None or row.key_id != key_id or not row.stored:
                return False
            # Keep the row for the session's lineage; forget its content.
            row.stored = False
            return True

    def delete_turns_of(self, session_id: str) -> None:
        with self._sessions.begin() as db:
            db.execute(delete(TurnRecord).where(TurnRecord.session_id == session_id))

    @staticmethod
    def _turn_row(row: TurnRecord) -> TurnRow:
        turn = codec.turn_from_json(row.turn_json)
        return TurnRow(row.id, row.session_id, row.key_id, row.resume_at, turn)

    # Crash recovery

    def save_progress(self, turn: Turn) -> None:
        """Stores a running turn as it is now (with its usage so far), so a core
        that dies mid-turn leaves it behind; a finished turn is left alone."""
        with self._sessions.begin() as db:
            db.execute(
                update(TurnRecord)
                .where(TurnRecord.id == turn.id, TurnRecord.status == IN_PROGRESS)
                .values(turn_json=codec.turn_to_json(turn))
            )
