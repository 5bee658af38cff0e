"""Admin-site users: argon2-hashed passwords, roles, sign-in tokens, sign-in throttling.

Throttling counts failed sign-ins per (account, address) and per address, so
that guessing one account's password from one place locks only that place out
of that account: its owner still signs in from elsewhere. Each failure past a
limit doubles the wait (backoff); an admin can lift the locks of an account.

Every sign-in carries the user's current sign-in token; replacing the token
(signing out, a password change or reset) ends every sign-in made with the old one.
"""

from __future__ import annotations

import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.models import AdminUser, LoginFailure
from core_service.errors import InvalidArgument, NotFound, ResourceExhausted, Unauthenticated

ROLES = ("admin", "viewer")
# Failures older than this are forgotten.
THROTTLE_WINDOW = timedelta(hours=1)
# Failures of one account from one address before that pair is locked.
MAX_FAILURES_PER_USER = 5
# Failures from one address over every account before the address is locked.
MAX_FAILURES_PER_ADDRESS = 20
# The first lock's length; each further failure doubles it, up to the longest.
FIRST_LOCK = timedelta(seconds=60)
LONGEST_LOCK = timedelta(minutes=15)
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


@dataclass(frozen=True)
class SignInLock:
    """Sign-in refused for ``username`` (empty: every account) from ``address``."""

    username: str
    address: str
    locked_until: datetime
    failures: int


def lock_end(failures: int, last: datetime, limit: int) -> datetime | None:
    """When a run of ``failures`` (the last at ``last``) stops locking; None: no lock."""
    if failures < limit:
        return None
    length = min(LONGEST_LOCK, FIRST_LOCK * (1 << min(failures - limit, 20)))
    return _aware(last) + length


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were written as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
            row = _existing(db, username)
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
            row = _existing(db, username)
            row.password_hash = _hasher.hash(password)
            row.must_change_password = must_change
            # A new password ends every sign-in made with the old one.
            row.sign_in_token = _new_token()
            return UserInfo.of(row)

    def start_sign_in(self, username: str) -> str:
        """The token a new sign-in of ``username`` carries."""
        with self._sessions.begin() as db:
            row = _existing(db, username)
            if not row.sign_in_token:
                row.sign_in_token = _new_token()
            return row.sign_in_token

    def check_sign_in(self, username: str, token: str) -> UserInfo | None:
        """The user while a sign-in with ``token`` is valid; None once it was ended."""
        with self._sessions() as db:
            row = db.get(AdminUser, username)
            if row is None or row.disabled or not row.sign_in_token or not token:
                return None
            if not hmac.compare_digest(row.sign_in_token.encode(), token.encode()):
                return None
            return UserInfo.of(row)

    def end_sign_ins(self, username: str) -> str:
        """Ends every sign-in of ``username``; returns the token from now on."""
        with self._sessions.begin() as db:
            row = _existing(db, username)
            row.sign_in_token = _new_token()
            return row.sign_in_token

    def unlock(self, username: str) -> None:
        """Forgets the failed sign-ins of ``username``, from every address."""
        with self._sessions.begin() as db:
            db.execute(delete(LoginFailure).where(LoginFailure.username == username))

    def locks(self) -> list[SignInLock]:
        """The locks in force now: per (account, address), then per address."""
        now = datetime.now(UTC)
        since = now - THROTTLE_WINDOW
        recent = LoginFailure.time > since
        out: list[SignInLock] = []
        with self._sessions() as db:
            pairs = db.execute(
                select(LoginFailure.username, LoginFailure.address, func.count(),
                       func.max(LoginFailure.time))
                .where(recent)
                .group_by(LoginFailure.username, LoginFailure.address)
            ).all()
            addresses = db.execute(
                select(LoginFailure.address, func.count(), func.max(LoginFailure.time))
                .where(recent)
                .group_by(LoginFailure.address)
            ).all()
        for username, address, count, last in pairs:
            end = lock_end(count, last, MAX_FAILURES_PER_USER)
            if end is not None and end > now:
                out.append(SignInLock(username, address, end, count))
        for address, count, last in addresses:
            end = lock_end(count, last, MAX_FAILURES_PER_ADDRESS)
            if end is not None and end > now:
                out.append(SignInLock("", address, end, count))
        return sorted(out, key=lambda lock: lock.locked_until, reverse=True)

    def verify(self, username: str, password: str) -> bool:
        with self._sessions() as db:
            row = db.get(AdminUser, username)
            return row is not None and _matches(row.password_hash, password)

    def authenticate(self, username: str, password: str, address: str) -> UserInfo:
        """The user, or UNAUTHENTICATED; RESOURCE_EXHAUSTED after too many failures."""
        now = datetime.now(UTC)
        since = now - THROTTLE_WINDOW
        with self._sessions.begin() as db:
            runs = (
                (LoginFailure.username == username, MAX_FAILURES_PER_USER),
                (None, MAX_FAILURES_PER_ADDRESS),
            )
            wait = 0.0
            for extra, limit in runs:
                query = select(func.count(), func.max(LoginFailure.time)).where(
                    LoginFailure.address == address, LoginFailure.time > since
                )
                if extra is not None:
                    query = query.where(extra)
                count, last = db.execute(query).one()
                end = lock_end(count, last, limit) if last is not None else None
                if end is not None:
                    wait = max(wait, (end - now).total_seconds())
            if wait > 0:
                raise ResourceExhausted(
                    "Too many failed sign-ins; wait a while and try again.",
                    reason="login_throttled",
                    retry_after_seconds=max(1, math.ceil(wait)),
                )
            row = db.get(AdminUser, username)
            # Hash even for unknown users, so timing does not reveal who exists.
            ok = _matches(row.password_hash if row else _DUMMY_HASH, password) and row is not None
            if ok and row is not None and not row.disabled:
                # Only this address's record is cleared: the owner signing in
                # elsewhere must not reset a guesser's lock.
                db.execute(
                    delete(LoginFailure).where(
                        LoginFailure.username == username, LoginFailure.address == address
                    )
                )
                row.last_login_at = now
                if _hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = _hasher.hash(password)
                return UserInfo.of(row)
        # Recorded in its own transaction: raising inside the one above would
        # roll the failure back and throttling would never trigger.
        with self._sessions.begin() as db:
            db.add(LoginFailure(username=username, address=address, time=now))
        raise Unauthenticated("Wrong username or password.", reason="bad_credentials")


def _existing(db: Session, username: str) -> AdminUser:
    row = db.get(AdminUser, username)
    if row is None:
        raise NotFound(f"No user '{username}'.", reason="user_not_found", param="username")
    return row


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = _hasher.hash("not a real password, used for timing only")
