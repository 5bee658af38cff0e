"""Request logs: one row per API request, written off the request path.

- `LogEntry`: what the request path hands over (plain values, no ORM).
- `redact` / `truncate` / `prepare_body`: secrets out, size bounded.
- `RequestLogWriter`: an in-memory queue drained in batches by one asyncio
  task, each batch inserted in a worker thread. `submit()` never blocks and
  never raises; `close()` writes everything still queued.
- `Journal`: with it, `submit()` first appends the row to a local file, so a
  core killed before its batch was written loses no row: the next core on
  the host replays the file (`replay_journal`) when it finds the first dead.
- `RequestLogQuery`: newest-first listing with AIP-158 page tokens, lookup
  by id, and retention purges.
- `to_proto`: a stored row as `claudecode.v1.RequestLog`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from ccapi_client.redaction import redact as redact
from claudecode.v1 import admin_pb2, events_pb2
from core_service.db.models import RequestLogRecord

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "error", "cancelled")
DEFAULT_BODY_LIMIT = 16 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def new_log_id(time_ms: int | None = None) -> str:
    """A time-sortable id: "log_" + 12 hex digits of Unix ms + 16 random hex digits."""
    ms = int(time.time() * 1000) if time_ms is None else time_ms
    return f"log_{ms & 0xFFFFFFFFFFFF:012x}{os.urandom(8).hex()}"


@dataclass
class LogEntry:
    """One API request as the request path reports it."""

    time_ms: int = 0
    key_id: str = ""
    key_name: str = ""
    endpoint: str = ""
    model: str = ""
    status: int = 200
    outcome: str = "ok"
    latency_ms: int = 0
    ttft_ms: int = 0
    # Time waited in the admission queue for a running slot.
    queue_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    session_id: str = ""
    turn_id: str = ""
    tools_used: list[str] = field(default_factory=list)
    files_changed: int = 0
    error: str = ""
    stream: bool = False
    request_id: str = ""
    request_body: str = ""
    response_body: str = ""
    id: str = ""
    # The W3C trace id (32 hex digits) of the request's trace; "" when none.
    trace_id: str = ""

    def __post_init__(self) -> None:
        if not self.time_ms:
            self.time_ms = int(time.time() * 1000)
        if not self.id:
            self.id = new_log_id(self.time_ms)


# --------------------------------------------------------------------------
# Redaction and truncation
# --------------------------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, plus a visible note when cut.
    A negative limit means no limit."""
    if limit < 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated to {limit} of {len(text)} characters]"


def prepare_body(text: str, limit: int = DEFAULT_BODY_LIMIT) -> str:
    """Redacted, then truncated to `limit` characters (negative: no limit).

    Only a margin beyond the limit is scanned, so huge bodies cost little; the
    margin is cut away again after redaction, so a secret straddling the limit
    is seen whole by redact() and never stored in part.
    """
    if not text:
        return ""
    if limit < 0:
        return redact(text)
    margin = limit + 4096
    head = redact(text[:margin])
    if len(text) <= margin and len(head) <= limit:
        return head
    return f"{head[:limit]}… [truncated to {limit} of {len(text)} characters]"


# --------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------


@dataclass
class WriterStats:
    """Counters of a RequestLogWriter, for metrics and tests."""

    submitted: int = 0
    written: int = 0
    # Refused because the queue was full or the writer was closed.
    dropped_queue: int = 0
    # Given up after the database kept failing.
    dropped_db: int = 0
    failed_batches: int = 0
    retries: int = 0


class RequestLogWriter:
    """Queues log entries in memory and inserts them in batches in a thread.

    Call start() inside the event loop, submit() from the request path (any
    thread), and `await close()` on shutdown: nothing queued before close()
    is lost unless the database keeps failing.

    Bodies are redacted and truncated to `body_limit` characters here, off the
    request path; set `log_bodies` (also later, for live config) to False to
    store no bodies at all.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        batch_size: int = 200,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        body_limit: int = DEFAULT_BODY_LIMIT,
        log_bodies: bool = True,
        retries: int = 3,
        retry_delay: float = 0.2,
        journal: Journal | None = None,
        on_submit: Callable[[LogEntry], None] | None = None,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be positive")
        self._sessions = sessions
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.body_limit = body_limit
        self.log_bodies = log_bodies
        self.retries = max(1, retries)
        self.retry_delay = retry_delay
        self.stats = WriterStats()
        self.journal = journal
        # Sees every entry as it is submitted (the core's metrics count there).
        self._on_submit = on_submit
        # Rows ready to insert: redacted and truncated when submitted, so what
        # the journal holds on disk is what the table will hold. Bounded by
        # `max_queue` in submit(): past it a row is dropped, counted and warned.
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._warned_at = 0.0
        self._stats_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Starts the background task on the running loop."""
        if self._task is not None:
            return
        self._bind_loop()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="request-log-writer")

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._lock = asyncio.Lock()

    async def flush(self) -> None:
        """Writes everything submitted so far."""
        self._bind_loop()
        assert self._lock is not None
        async with self._lock:
            await self._drain()

    async def close(self) -> None:
        """Stops accepting entries and writes all that are queued."""
        self._closed = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            try:
                await self._task
            except asyncio.CancelledError:
                # The task was cancelled (say, by a loop shutting down); still
                # flush below, unless it is close() itself being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:  # pragma: no cover - _run logs its own errors
                log.exception("request log writer task failed")
            self._task = None
        await self.flush()
        if self.journal is not None:
            self.journal.close()

    @property
    def pending(self) -> int:
        """Entries queued and not yet written."""
        return len(self._queue)

    # -- request path ----------------------------------------------------

    def submit(self, entry: LogEntry) -> None:
        """Queues an entry (appending it to the journal first, when there is
        one). Never blocks on the database, never raises."""
        try:
            if self._on_submit is not None:
                self._on_submit(entry)
            row = self._row(entry)
            with self._stats_lock:
                self.stats.submitted += 1
                if self._closed or len(self._queue) >= self.max_queue:
                    self.stats.dropped_queue += 1
                    self._warn_dropped()
                    return
                # Under the lock: a row is in the journal segment that is
                # current when it joins the queue (see _drain).
                if self.journal is not None:
                    self._journal_append(row)
                self._queue.append(row)
            if len(self._queue) >= self.batch_size:
                self._wake_up()
        except Exception:  # pragma: no cover - defensive: the request path must not fail
            log.exception("request log submit failed")

    def _journal_append(self, row: dict[str, Any]) -> None:
        assert self.journal is not None
        try:
            self.journal.append(row)
        except OSError as error:
            # Still queued: only its copy on disk is missing.
            now = time.monotonic()
            if now - self._warned_at > 10:
                self._warned_at = now
                log.warning("request log journal write failed: %s", error)

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._warned_at > 10:
            self._warned_at = now
            log.warning(
                "request log queue full or closed: %d entries dropped so far",
                self.stats.dropped_queue,
            )

    # -- background ------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None and self._lock is not None
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._lock:
                    await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - _insert handles database errors
                log.exception("request log writer failed")

    async def _drain(self) -> None:
        while True:
            with self._stats_lock:
                if not self._queue:
                    return
                rows = list(self._queue)
                self._queue.clear()
                # The closed segment holds exactly these rows.
                segment = self.journal.rotate() if self.journal is not None else None
            dropped_before = self.stats.dropped_db
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                # Shielded: a cancelled caller must not lose a batch half-way.
                await asyncio.shield(asyncio.to_thread(self._write_batch, batch))
            if self.journal is not None and segment is not None:
                # Rows the database refused stay on disk for the next start.
                self.journal.discard(segment, keep=self.stats.dropped_db > dropped_before)

    def row(self, entry: LogEntry) -> dict[str, Any]:
        """The table row for an entry, as this writer would insert it."""
        return self._row(entry)

    def _row(self, entry: LogEntry) -> dict[str, Any]:
        row = dataclasses.asdict(entry)
        row["tools_used"] = json.dumps(list(entry.tools_used))
        row["outcome"] = entry.outcome if entry.outcome in OUTCOMES else "error"
        row["error"] = truncate(redact(entry.error), 4000)
        if self.log_bodies:
            row["request_body"] = prepare_body(entry.request_body, self.body_limit)
            row["response_body"] = prepare_body(entry.response_body, self.body_limit)
        else:
            row["request_body"] = row["response_body"] = ""
        # Keep within the column sizes, which PostgreSQL enforces.
        for name, size in _STRING_SIZES.items():
            value = row[name]
            if len(value) > size:
                row[name] = value[:size]
        return row

    def _write_batch(self, rows: Sequence[dict[str, Any]]) -> None:
        rows = list(rows)
        error: Exception | None = None
        for attempt in range(self.retries):
            try:
                self._insert(rows)
                with self._stats_lock:
                    self.stats.written += len(rows)
                return
            except (IntegrityError, DataError) as exc:
                # A bad row (say, a duplicate id): no use retrying the batch.
                error = exc
                break
            except SQLAlchemyError as exc:
                error = exc
                with self._stats_lock:
                    self.stats.retries += 1
                if attempt + 1 < self.retries:
                    time.sleep(self.retry_delay * (2**attempt))
        with self._stats_lock:
            self.stats.failed_batches += 1
        if isinstance(error, (IntegrityError, DataError)) and len(rows) > 1:
            # Save the good rows of the batch one by one.
            saved = 0
            for row in rows:
                try:
                    self._insert([row])
                    saved += 1
                except SQLAlchemyError:
                    pass
            with self._stats_lock:
                self.stats.written += saved
                self.stats.dropped_db += len(rows) - saved
            log.error("request log batch had %d bad rows: %s", len(rows) - saved, error)
            return
        with self._stats_lock:
            self.stats.dropped_db += len(rows)
        log.error("dropping %d request log rows after database errors: %s", len(rows), error)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._sessions() as session, session.begin():
            session.execute(insert(RequestLogRecord), rows)


class Journal:
    """Request-log rows on their way to the database, appended to a local file.

    One file per core instance and segment (`<instance>.<n>.jsonl`): the
    writer starts a new segment when it takes the queued rows, and deletes
    the old one once they are in the database. An append is one write(2) on
    an O_APPEND descriptor: in the kernel's page cache at once, so it
    survives the process being killed (not the machine losing power).
    """

    def __init__(self, directory: Path, instance: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self.instance = instance
        self._number = 0
        self._fd = -1
        self._written = 0
        self._open()

    def _path(self, number: int) -> Path:
        return self.directory / f"{self.instance}.{number}.jsonl"

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fd = os.open(self._path(self._number), flags, 0o600)
        self._written = 0

    def append(self, row: dict[str, Any]) -> None:
        # The newline goes first: a line cut short by an error (a full disk)
        # cannot swallow the row after it.
        data = ("\n" + json.dumps(row, ensure_ascii=False, separators=(",", ":"))).encode()
        # os.write may write less than asked (a full disk): loop until done or error.
        view = memoryview(data)
        while view:
            done = os.write(self._fd, view)
            view = view[done:]
        self._written += 1

    def rotate(self) -> Path | None:
        """Starts the next segment; returns the previous one (None if empty)."""
        if self._written == 0:
            return None
        old = self._path(self._number)
        os.close(self._fd)
        self._number += 1
        self._open()
        return old

    def discard(self, segment: Path, keep: bool = False) -> None:
        if keep:
            log.warning("keeping request-log journal %s for replay at next start", segment)
            return
        segment.unlink(missing_ok=True)

    def close(self) -> None:
        """After a clean shutdown (everything written): nothing is left behind."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if self._written == 0:
                self._path(self._number).unlink(missing_ok=True)


def journal_files(directory: Path, instance: str) -> list[Path]:
    return sorted(directory.glob(f"{instance}.*.jsonl"))


def journal_instances(directory: Path) -> set[str]:
    """The instances that left journal files in `directory`."""
    if not directory.is_dir():
        return set()
    return {path.name.split(".", 1)[0] for path in directory.glob("*.jsonl")}


def replay_journal(sessions: sessionmaker[Session], directory: Path, instance: str) -> int:
    """Inserts the rows a dead instance journaled (those already stored are
    skipped by id), then deletes its files. Returns how many were new."""
    added = 0
    for path in journal_files(directory, instance):
        rows: list[dict[str, Any]] = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut off by the kill
            if isinstance(row, dict) and row.get("id"):
                rows.append(row)
        for start in range(0, len(rows), 200):
            added += insert_missing(sessions, _not_logged(sessions, rows[start : start + 200]))
        path.unlink(missing_ok=True)
    return added


def _not_logged(
    sessions: sessionmaker[Session], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rows whose turn has no row yet: a core on another host may have
    written a turn's row from the turn itself while this journal waited."""
    turns = {row["turn_id"] for row in rows if row.get("turn_id")}
    if not turns:
        return rows
    with sessions() as session:
        logged = set(
            session.scalars(
                select(RequestLogRecord.turn_id).where(RequestLogRecord.turn_id.in_(turns))
            ).all()
        )
    return [row for row in rows if not row.get("turn_id") or row["turn_id"] not in logged]


def insert_missing(sessions: sessionmaker[Session], rows: list[dict[str, Any]]) -> int:
    """Inserts rows whose id is not stored yet; returns how many were new."""
    if not rows:
        return 0
    columns = {c.name for c in RequestLogRecord.__table__.columns}
    clean = [{k: v for k, v in row.items() if k in columns} for row in rows]
    added = 0
    with sessions() as session, session.begin():
        connection = session.connection()
        dialect = connection.dialect.name
        # RETURNING tells whether a row was added (rowcount does not, on every driver).
        statement = (
            (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RequestLogRecord)
            .on_conflict_do_nothing(index_elements=[RequestLogRecord.id])
            .returning(RequestLogRecord.id)
        )
        for row in clean:
            if connection.execute(statement, row).first() is not None:
                added += 1
    return added


_STRING_SIZES = {
    column.name: int(getattr(column.type, "length", 0))
    for column in RequestLogRecord.__table__.columns
    if getattr(column.type, "length", None)
}


# --------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilters:
    """What ListRequestLogs filters on; empty/zero fields do not filter."""

    start_time_ms: int = 0
    end_time_ms: int = 0
    key_id: str = ""
    model: str = ""
    status: int = 0
    endpoint: str = ""
    outcome: str = ""

    @classmethod
    def from_proto(cls, request: admin_pb2.ListRequestLogsRequest) -> LogFilters:
        return cls(
            start_time_ms=request.start_time_ms,
            end_time_ms=request.end_time_ms,
            key_id=request.key_id,
            model=request.model,
            status=request.status,
            endpoint=request.endpoint,
            outcome=request.outcome,
        )

    def fingerprint(self) -> str:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def clauses(self) -> list[ColumnElement[bool]]:
        t = RequestLogRecord
        out: list[ColumnElement[bool]] = []
        if self.start_time_ms:
            out.append(t.time_ms >= self.start_time_ms)
        if self.end_time_ms:
            out.append(t.time_ms < self.end_time_ms)
        if self.key_id:
            out.append(t.key_id == self.key_id)
        if self.model:
            out.append(t.model == self.model)
        if self.status:
            out.append(t.status == self.status)
        if self.endpoint:
            out.append(t.endpoint == self.endpoint)
        if self.outcome:
            out.append(t.outcome == self.outcome)
        return out


def _encode_token(time_ms: int, log_id: str, filters: LogFilters) -> str:
    raw = json.dumps({"t": time_ms, "i": log_id, "f": filters.fingerprint()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, filters: LogFilters) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        time_ms, log_id, fingerprint = data["t"], data["i"], data["f"]
        if not isinstance(time_ms, int) or not isinstance(log_id, str):
            raise TypeError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("page_token is not valid") from exc
    if fingerprint != filters.fingerprint():
        raise ValueError("page_token was issued for different filters")
    return time_ms, log_id


class RequestLogQuery:
    """Reads request logs. Methods are blocking: call them via asyncio.to_thread."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def list(
        self, filters: LogFilters, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[RequestLogRecord], str]:
        """One page, newest first, and the next page's token ("" on the last page).

        Raises ValueError for a negative page size, a malformed token or a
        token issued for other filters (INVALID_ARGUMENT).
        """
        if page_size < 0:
            raise ValueError("page_size must not be negative")
        if filters.outcome and filters.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        t = RequestLogRecord
        clauses = filters.clauses()
        if page_token:
            last_time, last_id = _decode_token(page_token, filters)
            # The redundant `<=` gives the planners an index range to scan.
            clauses.append(t.time_ms <= last_time)
            clauses.append(or_(t.time_ms < last_time, t.id < last_id))
        stmt = select(t).where(*clauses).order_by(t.time_ms.desc(), t.id.desc()).limit(size + 1)
        with self._sessions() as session:
            rows = list(session.scalars(stmt))
        if len(rows) <= size:
            return rows, ""
        rows = rows[:size]
        return rows, _encode_token(rows[-1].time_ms, rows[-1].id, filters)

    def get(self, log_id: str) -> RequestLogRecord | None:
        with self._sessions() as session:
            return session.get(RequestLogRecord, log_id)

    def purge_older_than(self, cutoff_ms: int, chunk: int = 5000) -> int:
        """Deletes entries older than `cutoff_ms` in chunks (short transactions,
        so writers are not held up); returns how many."""
        t = RequestLogRecord
        total = 0
        while True:
            ids = select(t.id).where(t.time_ms < cutoff_ms).order_by(t.time_ms).limit(chunk)
            with self._sessions() as session, session.begin():
                result = session.execute(
                    delete(t).where(t.id.in_(ids.scalar_subquery())),
                    execution_options={"synchronize_session": False},
                )
                deleted = int(cast("CursorResult[Any]", result).rowcount)
            total += deleted
            if deleted < chunk:
                return total


# --------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------


def _tools(raw: str) -> list[str]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def to_proto(row: RequestLogRecord | LogEntry) -> admin_pb2.RequestLog:
    """A stored row (or an entry not yet stored) as a claudecode.v1.RequestLog."""
    tools = row.tools_used if isinstance(row.tools_used, list) else _tools(row.tools_used)
    return admin_pb2.RequestLog(
        id=row.id,
        time_ms=row.time_ms,
        key_id=row.key_id,
        key_name=row.key_name,
        endpoint=row.endpoint,
        model=row.model,
        status=row.status,
        latency_ms=row.latency_ms,
        time_to_first_token_ms=row.ttft_ms,
        queue_ms=row.queue_ms,
        usage=events_pb2.Usage(
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cache_read_input_tokens=row.cache_read_tokens,
            cache_creation_input_tokens=row.cache_write_tokens,
            cost_usd=row.cost_usd,
        ),
        session_id=row.session_id,
        turn_id=row.turn_id,
        tools_used=tools,
        files_changed=row.files_changed,
        error=row.error,
        stream=row.stream,
        request_id=row.request_id,
        request_body=row.request_body,
        response_body=row.response_body,
        outcome=row.outcome,
        trace_id=row.trace_id,
    )
