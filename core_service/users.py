"""Admin-site users: argon2-hashed passwords, roles, sign-in throttling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import AdminUser, LoginFailure
from core_service.errors import InvalidArgument, NotFound, ResourceExhausted, Unauthenticated

ROLES = ("admin", "viewer")
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    disabled: bool
    must_change_password: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: AdminUser) -> UserInfo:
        return cls(
            row.username,
            row.role,
            row.disabled,
            row.must_change_password,
            row.created_at,
            row.last_login_at,
        )


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(
            f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.", param="password"
        )


class UserStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def create(
        self, username: str, role: str, password: str, must_change: bool = False
    ) -> UserInfo:
        if not username.strip() or len(username) > 100 or not username.isprintable():
            raise InvalidArgument("Usernames are 1 to 100 printable characters.", param="username")
        if role not in ROLES:
            raise InvalidArgument("Role must be admin or viewer.", param="role")
        check_password_rules(password)
        with self._sessions.begin() as db:
            if db.get(AdminUser, username) is not None:
                raise InvalidArgument(f"User '{username}' already exists.", param="username")
            row = AdminUser(
                username=username,
                password_hash=_hasher.hash(password),
                role=role,
                disabled=False,
                must_change_password=must_change,
                created_at=datetime.now(UTC),
            )
            db.add(row)
        return UserInfo.of(row)

    def get(self, username: str) -> UserInfo | None:
        with self._sessions() as db:
            row = db.get(AdminUser, username)
            return UserInfo.of(row) if row else None

    def all(self) -> list[UserInfo]:
        with self._sessions() as db:
            return [
                UserInfo.of(r) for r in db.scalars(select(AdminUser).order_by(AdminUser.username))
            ]

    def count(self) -> int:
        with self._sessions() as db:
            return int(db.scalar(select(func.count()).select_from(AdminUser)) or 0)

    def update(self, username: str, role: str | None, disabled: bool | None) -> UserInfo:
        with self._sessions.begin() as db:
            row = db.get(AdminUser, username)
            if row is None:
                raise NotFound(f"No user '{username}'.", reason="user_not_found", param="username")
            if role is not None:
                if role not in ROLES:
                    raise InvalidArgument("Role must be admin or viewer.", param="role")
                row.role = role
            if disabled is not None:
                row.disabled = disabled
            return UserInfo.of(row)

    def set_password(self, username: str, password: str, must_change: bool) -> UserInfo:
        check_password_rules(password)
        with self._sessions.begin() as db:
            row = db.get(AdminUser, username)
            if row is None:
                raise NotFound(f"No user '{username}'.", reason="user_not_found", param="username")
            row.password_hash = _hasher.hash(password)
            row.must_change_password = must_change
            return UserInfo.of(row)

    def verify(self, username: str, password: str) -> bool:
        with self._sessions() as db:
            row = db.get(AdminUser, username)
            return row is not None and _matches(row.password_hash, password)

    def authenticate(self, username: str, password: str, address: str) -> UserInfo:
        """The user, or UNAUTHENTICATED; RESOURCE_EXHAUSTED after too many failures."""
        now = datetime.now(UTC)
        since = now - THROTTLE_WINDOW
        with self._sessions.begin() as db:
            by_user = (
                db.scalar(
                    select(func.count())
                    .select_from(LoginFailure)
                    .where(LoginFailure.username == username, LoginFailure.time > since)
                )
                or 0
            )
            by_address = (
                db.scalar(
                    select(func.count())
                    .select_from(LoginFailure)
                    .where(LoginFailure.address == address, LoginFailure.time > since)
                )
                or 0
            )
            if by_user >= MAX_FAILURES_PER_USER or by_address >= MAX_FAILURES_PER_ADDRESS:
                raise ResourceExhausted(
                    "Too many failed sign-ins; wait a few minutes and try again.",
                    reason="login_throttled",
                    retry_after_seconds=int(THROTTLE_WINDOW.total_seconds()),
                )
            row = db.get(AdminUser, username)
            # Hash even for unknown users, so timing does not reveal who exists.
            ok = _matches(row.password_hash if row else _DUMMY_HASH, password) and row is not None
            if ok and row is not None and not row.disabled:
                db.execute(delete(LoginFailure).where(LoginFailure.username == username))
                row.last_login_at = now
                if _hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = _hasher.hash(password)
                return UserInfo.of(row)
        # Recorded in its own transaction: raising inside the one above would
        # roll the failure back and throttling would never trigger.
        with self._sessions.begin() as db:
            db.add(LoginFailure(username=username, address=address, time=now))
        raise Unauthenticated("Wrong username or password.", reason="bad_credentials")


def _matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _hasher.hash("not a real password, used for timing only")
