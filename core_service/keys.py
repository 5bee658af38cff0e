"""API keys: creation, lookup by secret, scopes and limits, revocation.

Secrets are 256-bit random strings, so a single SHA-256 is enough to make the
stored hash useless to an attacker and keeps the per-request lookup an index
hit; slow password hashes (argon2) are for the admin site's human passwords.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core_service.agent.permissions import ALLOWED_BY_DEFAULT
from core_service.db.models import ApiKey

SECRET_PREFIX = "sk-cc-"
BUDGET_PERIODS = ("day", "month", "total")
# A key's built-ins beside client tools: False none, True all, or names.
BuiltinDefault = bool | tuple[str, ...]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; we always store UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class KeyLimits:
    """0 means unlimited."""

    rpm: int = 0
    tpm: int = 0
    max_concurrent: int = 0
    budget_usd: float = 0.0
    budget_period: str = "month"


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
    limits: KeyLimits = field(default_factory=KeyLimits)
    allowed_models: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    # Built-ins beside a request's client tools when it does not say: False
    # none, True all the key's tools, or these names.
    builtin_tools_default: BuiltinDefault = False
    spent_usd: float = 0.0
    spent_total_usd: float = 0.0
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=aware(row.created_at) or now(),
            expires_at=aware(row.expires_at),
            revoked_at=aware(row.revoked_at),
            last_used_at=aware(row.last_used_at),
            limits=KeyLimits(
                rpm=row.rpm or 0,
                tpm=row.tpm or 0,
                max_concurrent=row.max_concurrent or 0,
                budget_usd=row.budget_usd or 0.0,
                budget_period=row.budget_period or "month",
            ),
            allowed_models=tuple(json.loads(row.allowed_models or "[]")),
            allowed_tools=tuple(json.loads(row.allowed_tools or "[]")),
            builtin_tools_default=_builtin_default(row.builtin_tools_default),
            spent_usd=row.spent_usd or 0.0,
            spent_total_usd=row.spent_total_usd or 0.0,
            updated_at=aware(row.updated_at),
        )

    def usable(self, at: datetime | None = None) -> bool:
        at = at or now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > at


@dataclass(frozen=True)
class KeySpec:
    """What a key is created or updated with."""

    name: str
    limits: KeyLimits = field(default_factory=KeyLimits)
    allowed_models: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    expires_at: datetime | None = None
    builtin_tools_default: BuiltinDefault = False


def validate(spec: KeySpec) -> None:
    """Raises ValueError naming the bad field."""
    if not spec.name.strip() or len(spec.name) > 200:
        raise ValueError("name: 1 to 200 characters")
    limits = spec.limits
    for name in ("rpm", "tpm", "max_concurrent", "budget_usd"):
        if getattr(limits, name) < 0:
            raise ValueError(f"{name}: must not be negative")
    if limits.budget_period not in BUDGET_PERIODS:
        raise ValueError(f"budget_period: one of {', '.join(BUDGET_PERIODS)}")
    unknown = [t for t in spec.allowed_tools if t not in ALLOWED_BY_DEFAULT]
    if unknown:
        # A misspelt tool would leave the key with tools it can never use.
        raise ValueError(
            f"allowed_tools: unknown {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(ALLOWED_BY_DEFAULT))}"
        )
    default = spec.builtin_tools_default
    if not isinstance(default, bool):
        allowed = set(spec.allowed_tools or ALLOWED_BY_DEFAULT)
        outside = [t for t in default if t not in allowed]
        if outside:
            raise ValueError(
                f"builtin_tools_default: {', '.join(map(repr, outside))} not among the key's tools"
            )


class KeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self, name: str, expires_in_days: float | None = None, spec: KeySpec | None = None
    ) -> tuple[KeyInfo, str]:
        """Creates a key; returns it with its secret, which is never stored."""
        created = now()
        spec = spec or KeySpec(
            name=name,
            expires_at=created + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        validate(spec)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=spec.name,
            prefix=secret[: len(SECRET_PREFIX) + 4],
            secret_hash=hash_secret(secret),
            created_at=created,
            updated_at=created,
            expires_at=spec.expires_at,
            active_turns=0,
            spent_usd=0.0,
            spent_total_usd=0.0,
            period_start=created,
        )
        _apply(row, spec)
        with self._sessions.begin() as db:
            db.add(row)
        return KeyInfo.of(row), secret

    def update(self, key_id: str, spec: KeySpec, fields: set[str]) -> KeyInfo | None:
        """Changes the named fields (name, limits, allowed_models, allowed_tools, expires_at)."""
        validate(spec)
        with self._sessions.begin() as db:
            row = db.get(ApiKey, key_id)
            if row is None:
                return None
            current = KeyInfo.of(row)
            merged = KeySpec(
                name=spec.name if "name" in fields else current.name,
                limits=spec.limits if "limits" in fields else current.limits,
                allowed_models=spec.allowed_models
                if "allowed_models" in fields
                else current.allowed_models,
                allowed_tools=spec.allowed_tools
                if "allowed_tools" in fields
                else current.allowed_tools,
                expires_at=spec.expires_at if "expires_at" in fields else current.expires_at,
                builtin_tools_default=spec.builtin_tools_default
                if "builtin_tools_default" in fields
                else current.builtin_tools_default,
            )
            validate(merged)  # a default must stay within the key's tools
            _apply(row, merged)
            row.expires_at = merged.expires_at
            row.updated_at = now()
            return KeyInfo.of(row)

    def authenticate(self, secret: str) -> KeyInfo | None:
        """The usable key with this secret, or None. Records its last use."""
        with self._sessions.begin() as db:
            row = db.scalar(select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret)))
            if row is None:
                return None
            info = KeyInfo.of(row)
            if not info.usable():
                return None
            last = aware(row.last_used_at)
            # Coarse last-use stamp: avoids a write on every request.
            if last is None or now() - last > timedelta(seconds=60):
                row.last_used_at = now()
            return info

    def all(self, include_revoked: bool = True) -> list[KeyInfo]:
        with self._sessions() as db:
            query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            return [KeyInfo.of(r) for r in db.scalars(query).all()]

    def get(self, key_id: str) -> KeyInfo | None:
        with self._sessions() as db:
            row = db.get(ApiKey, key_id)
            return KeyInfo.of(row) if row else None

    def revoke(self, key_id: str) -> KeyInfo | None:
        with self._sessions.begin() as db:
            row = db.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = now()
                row.updated_at = now()
            return KeyInfo.of(row)

    def count(self) -> int:
        with self._sessions() as db:
            return len(db.scalars(select(ApiKey.id)).all())

    def changed_since(self, since: datetime) -> list[KeyInfo]:
        with self._sessions() as db:
            rows = db.scalars(select(ApiKey).where(ApiKey.updated_at > since)).all()
            return [KeyInfo.of(r) for r in rows]


def _apply(row: ApiKey, spec: KeySpec) -> None:
    row.name = spec.name
    row.rpm = spec.limits.rpm
    row.tpm = spec.limits.tpm
    row.max_concurrent = spec.limits.max_concurrent
    row.budget_usd = spec.limits.budget_usd
    row.budget_period = spec.limits.budget_period
    row.allowed_models = json.dumps(list(spec.allowed_models))
    row.allowed_tools = json.dumps(list(spec.allowed_tools))
    default = spec.builtin_tools_default
    row.builtin_tools_default = json.dumps(default if isinstance(default, bool) else list(default))


def _builtin_default(stored: str | None) -> BuiltinDefault:
    value = json.loads(stored or "false")
    return value if isinstance(value, bool) else tuple(str(v) for v in value)
