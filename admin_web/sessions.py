"""Signed-cookie sessions, CSRF tokens and flash messages.

The whole session lives in one cookie signed with itsdangerous; the signature's
timestamp is the last activity, so a cookie older than the idle timeout is
refused and every response re-signs it (sliding expiry). Signing in issues a
new session id and CSRF token (rotation); signing out drops the cookie.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ccapi_client.enums import Role
from claudecode.v1 import admin_pb2

COOKIE_NAME = "ccapi_admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    """One browser's session; ``username`` is empty until sign-in."""

    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    username: str = ""
    role: Role = admin_pb2.USER_ROLE_UNSPECIFIED
    must_change_password: bool = False
    checked_at: int = 0
    # The core's sign-in token: once the core replaces it, this sign-in is over.
    token: str = ""
    flashes: list[tuple[str, str]] = field(default_factory=list)
    # Set when the cookie must be deleted instead of re-issued.
    ended: bool = False

    @property
    def signed_in(self) -> bool:
        return bool(self.username) and not self.ended

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def pop_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, token or "")

    def sign_in(
        self, username: str, role: Role, must_change: bool, now: int, token: str
    ) -> None:
        """Rotates id and CSRF token, so nothing from before sign-in stays valid."""
        self.sid = secrets.token_urlsafe(16)
        self.csrf = secrets.token_urlsafe(32)
        self.username = username
        self.role = role
        self.must_change_password = must_change
        self.checked_at = now
        self.token = token
        self.ended = False

    def sign_out(self) -> None:
        self.username = ""
        self.role = admin_pb2.USER_ROLE_UNSPECIFIED
        self.must_change_password = False
        self.token = ""
        self.ended = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "s": self.sid,
            "c": self.csrf,
            "u": self.username,
            "r": self.role,
            "m": self.must_change_password,
            "k": self.checked_at,
            "t": self.token,
            "f": [list(f) for f in self.flashes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        flashes = [(str(k), str(t)) for k, t in data.get("f", [])][:10]
        return cls(
            sid=str(data["s"]),
            csrf=str(data["c"]),
            username=str(data.get("u", "")),
            role=Role(int(data.get("r", 0))),
            must_change_password=bool(data.get("m", False)),
            checked_at=int(data.get("k", 0)),
            token=str(data.get("t", "")),
            flashes=flashes,
        )


class SessionCodec:
    """Turns sessions into cookie values and back, enforcing the idle timeout."""

    def __init__(self, secret_key: str, idle_timeout_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="ccapi-admin-session")
        self.idle_timeout_seconds = idle_timeout_seconds

    def dumps(self, session: Session) -> str:
        return str(self._serializer.dumps(session.to_dict()))

    def loads(self, value: str | None) -> Session | None:
        """The session in the cookie, or None when missing, forged or idle too long."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.idle_timeout_seconds)
            if not isinstance(data, dict):
                return None
            return Session.from_dict(data)
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
