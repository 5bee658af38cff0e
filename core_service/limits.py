"""Per-key limits, enforced in the core so gRPC callers obey them too.

Request counts change through one conditional SQL statement (an upsert with
the limit in its WHERE clause), and concurrency slots are leases taken while
the key's row is locked, so the database decides who gets the last slot:
limits hold exactly across facade workers and core processes sharing one
database. Leases expire unless renewed, so a crashed process frees its slots;
each names the core instance holding it, so crash recovery frees the slots of
a core found dead at once instead of when they lapse.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import ApiKey, RateWindow, TurnLease
from core_service.errors import PermissionDenied, ResourceExhausted
from core_service.keys import KeyInfo, aware

# A turn's concurrency slot lapses this long after its holder last renewed it:
# a crashed process gives its slots back on its own.
LEASE_TIME = timedelta(seconds=90)
RENEW_SECONDS = 30.0


@dataclass
class Admission:
    """A turn let through; `release` must follow when it ends."""

    key_id: str
    # The concurrency lease held for the turn ("" when the key has no such limit).
    lease: str
    headers: dict[str, str] = field(default_factory=dict)


def period_start(period: str, at: datetime) -> datetime:
    if period == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return datetime(1970, 1, 1, tzinfo=UTC)


def next_period(period: str, start: datetime) -> datetime | None:
    if period == "day":
        return datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    if period == "month":
        return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return None


class LimitGate:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session], owner: str = "") -> None:
        self._dialect = engine.dialect.name
        # The core instance whose turns take leases here ("" for none).
        self.owner = owner
        self._sessions = sessions
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def check_model(self, key: KeyInfo, names: set[str]) -> None:
        """PERMISSION_DENIED unless one of the model's names is in the key's scope."""
        if key.allowed_models and not names & set(key.allowed_models):
            raise PermissionDenied(
                f"This API key may not use the model '{sorted(names)[0]}'.",
                reason="model_not_allowed",
                param="model",
            )

    def admit(self, key: KeyInfo, lease: str | None = None) -> Admission:
        """Counts one request against the key's limits, or raises RESOURCE_EXHAUSTED.
        With `lease` (one a waiting turn holds) no new concurrency lease is taken."""
        limits = key.limits
        now = time.time()
        window = int(now // 60)
        reset = f"{60 - int(now % 60)}s"
        headers: dict[str, str] = {}
        with self._sessions.begin() as db:
            if limits.budget_usd > 0:
                spent, ends = self._spent(db, key)
                if spent >= limits.budget_usd:
                    retry = int(ends.timestamp() - now) if ends else None
                    raise ResourceExhausted(
                        f"This API key has used its budget of ${limits.budget_usd:.2f} "
                        f"per {limits.budget_period}.",
                        reason="insufficient_quota",
                        retry_after_seconds=retry,
                    )
            if limits.tpm > 0:
                used = (
                    db.scalar(
                        select(RateWindow.tokens).where(
                            RateWindow.key_id == key.id, RateWindow.window == window
                        )
                    )
                    or 0
                )
                headers.update(
                    {
                        "x-ratelimit-limit-tokens": str(limits.tpm),
                        "x-ratelimit-remaining-tokens": str(max(0, limits.tpm - used)),
                        "x-ratelimit-reset-tokens": reset,
                    }
                )
                if used >= limits.tpm:
                    raise ResourceExhausted(
                        f"Rate limit reached: {limits.tpm} tokens per minute.",
                        retry_after_seconds=60 - int(now % 60),
                        headers=headers,
                    )
            count = self._count_request(db, key.id, window, limits.rpm)
            if limits.rpm > 0:
                headers.update(
                    {
                        "x-ratelimit-limit-requests": str(limits.rpm),
                        "x-ratelimit-remaining-requests": str(
                            max(0, limits.rpm - (count or limits.rpm))
                        ),
                        "x-ratelimit-reset-requests": reset,
                    }
                )
                if count is None:
                    raise ResourceExhausted(
                        f"Rate limit reached: {limits.rpm} requests per minute.",
                        retry_after_seconds=60 - int(now % 60),
                        headers=headers,
                    )
        if lease is not None:
            return Admission(key.id, lease, headers)
        taken = ""
        if limits.max_concurrent > 0:
            taken = self._take_lease(key.id, limits.max_concurrent, headers)
        return Admission(key.id, taken, headers)

    def _take_lease(self, key_id: str, limit: int, headers: dict[str, str]) -> str:
        now = datetime.now(UTC)
        lease = "lease_" + secrets.token_hex(12)
        with self._sessions.begin() as db:
            # Admissions of one key take turns: writing its row holds a row lock
            # (PostgreSQL) or the write lock (SQLite) until this commits.
            db.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(active_turns=ApiKey.active_turns)
            )
            db.execute(
                delete(TurnLease).where(TurnLease.key_id == key_id, TurnLease.expires_at <= now)
            )
            running = (
                db.scalar(
                    select(func.count()).select_from(TurnLease).where(TurnLease.key_id == key_id)
                )
                or 0
            )
            if running >= limit:
                raise ResourceExhausted(
                    f"Too many turns at once: this key allows {limit}.",
                    retry_after_seconds=1,
                    headers=headers,
                )
            db.add(
                TurnLease(
                    id=lease, key_id=key_id, expires_at=now + LEASE_TIME, owner=self.owner or None
                )
            )
        with self._lock:
            self._held.add(lease)
        return lease

    def renew_leases(self) -> None:
        """Extends the leases of this process's running turns (call every RENEW_SECONDS)."""
        with self._lock:
            held = list(self._held)
        if held:
            with self._sessions.begin() as db:
                db.execute(
                    update(TurnLease)
                    .where(TurnLease.id.in_(held))
                    .values(expires_at=datetime.now(UTC) + LEASE_TIME)
                )

    def free_leases_of(self, owner: str) -> int:
        """Deletes every lease a dead core instance held; returns how many."""
        with self._sessions.begin() as db:
            result = db.execute(delete(TurnLease).where(TurnLease.owner == owner))
            return int(getattr(result, "rowcount", 0) or 0)

    def release(self, admission: Admission, tokens: int, cost_usd: float) -> None:
        """Returns the concurrency slot and books tokens and spend."""
        if admission.lease:
            with self._lock:
                self._held.discard(admission.lease)
        with self._sessions.begin() as db:
            if admission.lease:
                db.execute(delete(TurnLease).where(TurnLease.id == admission.lease))
            self.book(db, admission.key_id, tokens, cost_usd)

    def book(self, db: Session, key_id: str, tokens: int, cost_usd: float) -> None:
        """Counts a turn's tokens in this minute's window and its spend, in `db`'s
        transaction (also for a turn crash recovery finished)."""
        if tokens:
            self._add_tokens(db, key_id, int(time.time() // 60), tokens)
        if cost_usd:
            db.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .values(
                    spent_usd=ApiKey.spent_usd + cost_usd,
                    spent_total_usd=ApiKey.spent_total_usd + cost_usd,
                )
            )

    def _spent(self, db: Session, key: KeyInfo) -> tuple[float, datetime | None]:
        """Spend in the current period, starting a new period when due."""
        row = db.get(ApiKey, key.id)
        if row is None:
            return 0.0, None
        now = datetime.now(UTC)
        start = period_start(row.budget_period, now)
        current = aware(row.period_start)
        if current is None or current < start:
            # A conditional reset: only one process starts the new period.
            db.execute(
                update(ApiKey)
                .where(ApiKey.id == key.id, ApiKey.period_start == row.period_start)
                .values(spent_usd=0.0, period_start=start)
            )
            db.refresh(row)
        return row.spent_usd, next_period(row.budget_period, start)

    def _count_request(self, db: Session, key_id: str, window: int, rpm: int) -> int | None:
        """The request's number in this window, or None when the limit is reached."""
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(
            RateWindow
        ).values(key_id=key_id, window=window, requests=1, tokens=0)
        statement = insert.on_conflict_do_update(
            index_elements=[RateWindow.key_id, RateWindow.window],
            set_={"requests": RateWindow.requests + 1},
            where=(RateWindow.requests < rpm) if rpm > 0 else None,
        ).returning(RateWindow.requests)
        return db.scalar(statement)

    def _add_tokens(self, db: Session, key_id: str, window: int, tokens: int) -> None:
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(
            RateWindow
        ).values(key_id=key_id, window=window, requests=0, tokens=tokens)
        db.execute(
            insert.on_conflict_do_update(
                index_elements=[RateWindow.key_id, RateWindow.window],
                set_={"tokens": RateWindow.tokens + tokens},
            )
        )

    def usage_last_day(self) -> dict[str, tuple[int, int]]:
        """(requests, tokens) per key over the last 24 hours of windows."""
        since = int(time.time() // 60) - 1440
        with self._sessions() as db:
            rows = db.execute(
                select(
                    RateWindow.key_id, func.sum(RateWindow.requests), func.sum(RateWindow.tokens)
                )
                .where(RateWindow.window >= since)
                .group_by(RateWindow.key_id)
            ).all()
        return {key_id: (int(requests or 0), int(tokens or 0)) for key_id, requests, tokens in rows}

    def purge_windows(self, older_than_window: int) -> None:
        from sqlalchemy import delete

        with self._sessions.begin() as db:
            db.execute(delete(RateWindow).where(RateWindow.window < older_than_window))
