"""Files a key uploads (the Files API): metadata in the database, bytes on disk.

    $CCAPI_DATA_DIR/files/          0700 (the core's user: root in production)
      incoming/                     0700  uploads in progress, never served
      file-<random>                 0600  one per stored file

Why not in the SQL row: a file may be hundreds of megabytes. A row that size
is read whole into memory by every driver, bloats SQLite's single file and
PostgreSQL's backups, and cannot be streamed in chunks; a plain file can, and
deleting it gives the space back at once.

Why named by the file id, not by its content hash: with content addressing two
uploads of the same bytes (by two keys, or one key twice) share one blob, and
deleting one then needs a reference count that every core process sharing
the data dir would have to update atomically with the rows; a delete racing
an upload of the same bytes could remove a blob a new row points to. One blob
per id makes delete exact and immediate (the bytes are gone when DELETE
answers), and the SHA-256 is still recorded for integrity checks.

Agents never reach these bytes: the directory is outside every workspace and
home, 0700 to the core's user, and each conversation's Claude Code runs as a
uid of its own when the core is root. A file reaches an agent only when the
core copies it into that conversation's workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from core_service.db.models import FileRecord
from core_service.errors import InvalidArgument, NotFound, ResourceExhausted

CHUNK_BYTES = 1024 * 1024
# Purposes files here can serve: attached to conversations.
PURPOSES = ("assistants", "user_data", "vision")
# OpenAI's other upload purposes, for APIs this service does not have.
FOREIGN_PURPOSES = ("batch", "fine-tune", "evals")
# Every purpose an OpenAI file can have (what a list may filter on).
LISTABLE_PURPOSES = (
    *PURPOSES,
    *FOREIGN_PURPOSES,
    "assistants_output",
    "batch_output",
    "fine-tune-results",
)
EXPIRES_AFTER_RANGE = (3600, 2_592_000)
MAX_FILENAME_BYTES = 255
MAX_LIST = 10_000
# Room for the multipart framing around the file (boundaries, part headers,
# the purpose field) when judging a declared body length against the limit.
MULTIPART_SLACK_BYTES = 64 * 1024
# Uploads in progress and blobs without a row (a crash between the two steps
# of storing) older than this are swept by the retention pass.
ORPHAN_SECONDS = 24 * 3600
# File ids look like OpenAI's: "file-" and letters and digits.
ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class FilePolicy:
    """The live limits: largest file, and how many days a file is kept."""

    max_bytes: int
    retention_days: int


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int
    sha256: str
    media_type: str


@dataclass(frozen=True)
class UploadStart:
    filename: str
    purpose: str
    expires_after_seconds: int = 0
    media_type: str = ""
    declared_body_bytes: int = 0


@dataclass(frozen=True)
class ListQuery:
    purpose: str = ""
    limit: int = 0
    order: str = ""
    after: str = ""


def too_large(limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"The file is larger than the limit of {limit} bytes.",
        reason="file_too_large",
        param="file",
    )


def clean_filename(raw: str) -> str:
    """The name without directories (browsers may send a Windows path);
    refused when empty, too long, or with NUL or control characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", ".."):
        raise InvalidArgument("The uploaded file needs a filename.", param="file")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(
            "The filename must not contain NUL or control characters.", param="file"
        )
    if len(name.encode()) > MAX_FILENAME_BYTES:
        raise InvalidArgument(
            f"The filename is longer than {MAX_FILENAME_BYTES} bytes.", param="file"
        )
    return name


def check_purpose(purpose: str) -> str:
    if purpose in PURPOSES:
        return purpose
    if purpose in FOREIGN_PURPOSES:
        raise InvalidArgument(
            f"The purpose '{purpose}' is not supported by this service: it has no API that "
            f"uses such files. Use one of {', '.join(PURPOSES)}.",
            reason="unsupported_parameter",
            param="purpose",
        )
    raise InvalidArgument(
        f"{purpose!r} is not one of {list(PURPOSES)} - 'purpose'", param="purpose"
    )


def _unix(value: datetime | None) -> int:
    if value is None:
        return 0
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


class Upload:
    """One upload in progress: bytes go to a private temporary file, counted
    and hashed; nothing is visible until `finish`. Not thread-safe: one caller
    at a time (the servicer awaits each step)."""

    def __init__(self, store: FileStore, key_id: str, start: UploadStart, limit: int) -> None:
        self._store = store
        self._key_id = key_id
        self._start = start
        self._limit = limit
        self._size = 0
        self._hash = hashlib.sha256()
        self.id = "file-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(24))
        self._temp = store.incoming / f"{self.id}.part"
        fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._handle: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        if self._handle is None:
            raise InvalidArgument("The upload is already finished.")
        self._size += len(chunk)
        if self._size > self._limit:
            self.discard()
            raise too_large(self._limit)
        self._hash.update(chunk)
        self._handle.write(chunk)

    def finish(self, total_bytes: int) -> StoredFile:
        if self._handle is None:
            raise InvalidArgument("The upload is already finished.")
        if total_bytes != self._size:
            self.discard()
            raise InvalidArgument(
                f"The upload was cut short ({self._size} of {total_bytes} bytes arrived).",
                param="file",
            )
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        return self._store._commit(
            self, self._key_id, self._start, self._size, self._hash.hexdigest()
        )

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(FileNotFoundError):
            self._temp.unlink()

    @property
    def temp_path(self) -> Path:
        return self._temp


class FileStore:
    """Synchronous (SQLAlchemy and file IO); callers use a thread."""

    def __init__(
        self, db: sessionmaker[Session], root: Path, policy: Callable[[], FilePolicy]
    ) -> None:
        self._db = db
        self.root = root
        self.incoming = root / "incoming"
        self._policy = policy

    def policy(self) -> FilePolicy:
        """The live limits now (attachments obey the same largest size)."""
        return self._policy()

    def prepare(self) -> None:
        for path in (self.root, self.incoming):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)

    # --- uploads -------------------------------------------------------------------------

    def begin(self, key_id: str, start: UploadStart) -> Upload:
        """Checks the metadata and opens the temporary file; raises before any
        byte is taken when the declared body cannot fit the limit."""
        limit = self._policy().max_bytes
        start = UploadStart(
            filename=clean_filename(start.filename),
            purpose=check_purpose(start.purpose),
            expires_after_seconds=start.expires_after_seconds,
            media_type=start.media_type[:255],
            declared_body_bytes=start.declared_body_bytes,
        )
        low, high = EXPIRES_AFTER_RANGE
        if start.expires_after_seconds and not low <= start.expires_after_seconds <= high:
            raise InvalidArgument(
                f"expires_after.seconds must be between {low} and {high}.",
                param="expires_after.seconds",
            )
        if start.declared_body_bytes > limit + MULTIPART_SLACK_BYTES:
            raise too_large(limit)
        return Upload(self, key_id, start, limit)

    def _commit(
        self, upload: Upload, key_id: str, start: UploadStart, size: int, sha256: str
    ) -> StoredFile:
        now = datetime.now(UTC)
        expires = (
            now + timedelta(seconds=start.expires_after_seconds)
            if start.expires_after_seconds
            else None
        )
        blob = self.root / upload.id
        # The blob first: a row never points at missing bytes. A crash between
        # the two leaves a blob without a row, which the retention pass sweeps.
        os.replace(upload.temp_path, blob)
        row = FileRecord(
            id=upload.id,
            key_id=key_id,
            filename=start.filename,
            purpose=start.purpose,
            media_type=start.media_type,
            size_bytes=size,
            sha256=sha256,
            created_at=now,
            expires_at=expires,
        )
        try:
            with self._db.begin() as db:
                db.add(row)
        except Exception:
            blob.unlink(missing_ok=True)
            raise
        return self._encode(row)

    # --- reading -------------------------------------------------------------------------

    def _alive(self, now: datetime) -> ColumnElement[bool]:
        oldest = now - timedelta(days=self._policy().retention_days)
        return and_(
            FileRecord.created_at > oldest,
            or_(FileRecord.expires_at.is_(None), FileRecord.expires_at > now),
        )

    def _encode(self, row: FileRecord) -> StoredFile:
        created = _unix(row.created_at)
        expires = created + self._policy().retention_days * 86400
        if row.expires_at is not None:
            expires = min(expires, _unix(row.expires_at))
        return StoredFile(
            id=row.id,
            filename=row.filename,
            purpose=row.purpose,
            bytes=row.size_bytes,
            created_at=created,
            expires_at=expires,
            sha256=row.sha256,
            media_type=row.media_type,
        )

    def _row(self, db: Session, key_id: str, file_id: str) -> FileRecord:
        row = db.scalars(
            select(FileRecord).where(
                FileRecord.id == file_id,
                FileRecord.key_id == key_id,
                self._alive(datetime.now(UTC)),
            )
        ).first()
        if row is None:
            raise NotFound(
                f"No such File object: {file_id}", reason="file_not_found", param="file_id"
            )
        return row

    def get(self, key_id: str, file_id: str) -> StoredFile:
        with self._db() as db:
            return self._encode(self._row(db, key_id, file_id))

    def list(self, key_id: str, query: ListQuery) -> tuple[list[StoredFile], bool]:
        limit = query.limit or MAX_LIST
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIST}.", param="limit")
        if query.order not in ("", "asc", "desc"):
            raise InvalidArgument("order must be 'asc' or 'desc'.", param="order")
        if query.purpose and query.purpose not in LISTABLE_PURPOSES:
            raise InvalidArgument(
                f"{query.purpose!r} is not one of {list(LISTABLE_PURPOSES)} - 'purpose'",
                param="purpose",
            )
        ascending = query.order == "asc"
        with self._db() as db:
            where = [FileRecord.key_id == key_id, self._alive(datetime.now(UTC))]
            if query.purpose:
                where.append(FileRecord.purpose == query.purpose)
            if query.after:
                cursor = db.scalars(
                    select(FileRecord).where(
                        FileRecord.id == query.after, FileRecord.key_id == key_id
                    )
                ).first()
                if cursor is None:
                    raise InvalidArgument(
                        f"No such File object to list after: {query.after}", param="after"
                    )
                if ascending:
                    where.append(
                        or_(
                            FileRecord.created_at > cursor.created_at,
                            and_(
                                FileRecord.created_at == cursor.created_at,
                                FileRecord.id > cursor.id,
                            ),
                        )
                    )
                else:
                    where.append(
                        or_(
                            FileRecord.created_at < cursor.created_at,
                            and_(
                                FileRecord.created_at == cursor.created_at,
                                FileRecord.id < cursor.id,
                            ),
                        )
                    )
            order = (
                (FileRecord.created_at.asc(), FileRecord.id.asc())
                if ascending
                else (FileRecord.created_at.desc(), FileRecord.id.desc())
            )
            rows = db.scalars(select(FileRecord).where(*where).order_by(*order).limit(limit + 1))
            found = [self._encode(r) for r in rows]
        return found[:limit], len(found) > limit

    def open_content(self, key_id: str, file_id: str) -> tuple[StoredFile, BinaryIO]:
        """The file's metadata and its bytes opened for reading (the caller closes)."""
        stored = self.get(key_id, file_id)
        try:
            return stored, open(self.root / stored.id, "rb")
        except FileNotFoundError:
            # Deleted in between: as if it never existed.
            raise NotFound(
                f"No such File object: {file_id}", reason="file_not_found", param="file_id"
            ) from None

    @staticmethod
    def read_chunks(handle: BinaryIO) -> Iterator[bytes]:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk

    # --- deleting ------------------------------------------------------------------------

    def delete(self, key_id: str, file_id: str) -> str:
        with self._db.begin() as db:
            row = self._row(db, key_id, file_id)
            db.delete(row)
        (self.root / file_id).unlink(missing_ok=True)
        return file_id

    def purge_expired(self, batch: int = 500) -> int:
        """Deletes expired files (live retention or the client's expires_after)
        and sweeps leftovers of interrupted uploads; returns how many files went."""
        now = datetime.now(UTC)
        removed = 0
        while True:
            with self._db.begin() as db:
                ids = list(
                    db.scalars(select(FileRecord.id).where(~self._alive(now)).limit(batch)).all()
                )
                if not ids:
                    break
                db.execute(delete(FileRecord).where(FileRecord.id.in_(ids)))
            for file_id in ids:
                (self.root / file_id).unlink(missing_ok=True)
            removed += len(ids)
        self._sweep_orphans()
        return removed

    def _sweep_orphans(self) -> None:
        cutoff = time.time() - ORPHAN_SECONDS
        for path in self.incoming.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
        old = [
            p.name for p in self.root.glob("file-*") if p.is_file() and p.stat().st_mtime < cutoff
        ]
        for start in range(0, len(old), 500):
            names = old[start : start + 500]
            with self._db() as db:
                known = set(db.scalars(select(FileRecord.id).where(FileRecord.id.in_(names))))
            for name in set(names) - known:
                (self.root / name).unlink(missing_ok=True)
