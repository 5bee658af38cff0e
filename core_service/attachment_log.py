"""Which files clients attached to a session's turns (table `attachments`),
for the admin site: attached files are listed apart from the agent's own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import AttachmentRecord

# Rows read back per session (a page lists them all; a cap all the same).
MAX_LISTED = 1000


@dataclass(frozen=True)
class AttachmentEntry:
    turn_id: str
    filename: str
    media_type: str
    size_bytes: int
    file_id: str
    attached_at: int


class AttachmentLog:
    """Synchronous (SQLAlchemy); callers use a thread."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self._db = db

    def record(self, session_id: str, entries: Sequence[AttachmentEntry]) -> None:
        with self._db.begin() as db:
            db.add_all(
                AttachmentRecord(
                    session_id=session_id,
                    turn_id=e.turn_id,
                    filename=e.filename,
                    media_type=e.media_type,
                    size_bytes=e.size_bytes,
                    file_id=e.file_id,
                    attached_at=datetime.fromtimestamp(e.attached_at, UTC),
                )
                for e in entries
            )

    def of_session(self, session_id: str) -> list[AttachmentEntry]:
        with self._db() as db:
            rows = db.scalars(
                select(AttachmentRecord)
                .where(AttachmentRecord.session_id == session_id)
                .order_by(AttachmentRecord.id)
                .limit(MAX_LISTED)
            )
            return [
                AttachmentEntry(
                    turn_id=r.turn_id,
                    filename=r.filename,
                    media_type=r.media_type,
                    size_bytes=r.size_bytes,
                    file_id=r.file_id,
                    attached_at=int(r.attached_at.timestamp()),
                )
                for r in rows
            ]
