"""API keys: creation, lookup by secret, listing, revocation.

Secrets are 256-bit random strings, so a single SHA-256 is enough to make the
stored hash useless to an attacker and keeps the per-request lookup an index
hit; slow password hashes (argon2) are for the admin site's human passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import ApiKey

SECRET_PREFIX = "sk-cc-"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; we always store UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class KeyInfo:
    """What callers may know about a key (never the secret)."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=_aware(row.created_at) or now(),
            expires_at=_aware(row.expires_at),
            revoked_at=_aware(row.revoked_at),
            last_used_at=_aware(row.last_used_at),
        )

    def usable(self, at: datetime | None = None) -> bool:
        at = at or now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > at


class KeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(self, name: str, expires_in_days: float | None = None) -> tuple[KeyInfo, str]:
        """Creates a key; returns it with its secret, which is never stored."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        created = now()
        row = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[: len(SECRET_PREFIX) + 4],
            secret_hash=hash_secret(secret),
            created_at=created,
            expires_at=created + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        with self._sessions.begin() as db:
            db.add(row)
        return KeyInfo.of(row), secret

    def authenticate(self, secret: str) -> KeyInfo | None:
        """The usable key with this secret, or None. Records its last use."""
        with self._sessions.begin() as db:
            row = db.scalar(select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret)))
            if row is None:
                return None
            info = KeyInfo.of(row)
            if not info.usable():
                return None
            last = _aware(row.last_used_at)
            # Coarse last-use stamp: avoids a write on every request.
            if last is None or now() - last > timedelta(seconds=60):
                row.last_used_at = now()
            return info

    def list(self) -> list[KeyInfo]:
        with self._sessions() as db:
            rows = db.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
            return [KeyInfo.of(r) for r in rows]

    def get(self, key_id: str) -> KeyInfo | None:
        with self._sessions() as db:
            row = db.get(ApiKey, key_id)
            return KeyInfo.of(row) if row else None

    def revoke(self, key_id: str) -> bool:
        with self._sessions.begin() as db:
            row = db.get(ApiKey, key_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = now()
            return True

    def count(self) -> int:
        with self._sessions() as db:
            return len(db.scalars(select(ApiKey.id)).all())
