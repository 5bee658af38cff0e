"""The admin site's settings, read from the environment."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ccapi_client.env import core_addr, env_int, env_str


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    # Unlike ccapi_client.env.env_bool, an unknown value is off rather than an
    # error; kept so that existing settings mean what they meant.
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in ("1", "true", "yes", "on")


def read_token_file(env: Mapping[str, str]) -> str:
    """The token `ccapi serve` writes to the data dir, for `ccapi admin` run alone."""
    data_dir = Path(env_str(env, "CCAPI_DATA_DIR", "./data"))
    try:
        return (data_dir / "admin-token").read_text().strip()
    except OSError:
        return ""


def derive_secret(admin_token: str) -> str:
    """A cookie-signing secret every worker agrees on without extra setup.

    Derived from the admin token (which only the site and the core know), under
    its own label so the token itself never signs anything.
    """
    if not admin_token:
        return secrets.token_urlsafe(32)
    return hashlib.sha256(b"ccapi-admin-web-cookie\x00" + admin_token.encode()).hexdigest()


@dataclass(frozen=True)
class AdminConfig:
    """Everything the admin site needs; users, keys and settings live in the core."""

    host: str = "127.0.0.1"
    port: int = 8001
    core_addr: str = "127.0.0.1:50051"
    admin_token: str = ""
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # A signed-in session ends after this long without a request.
    idle_timeout_seconds: int = 30 * 60
    # "auto": Secure cookies when the request came over HTTPS (or X-Forwarded-Proto
    # says so); "always"/"never" force it.
    secure_cookies: str = "auto"
    # Use X-Forwarded-For / X-Forwarded-Proto (only behind a trusted proxy).
    trust_proxy: bool = False
    workers: int = 1
    # Deadline of the unary calls to the core.
    rpc_timeout_seconds: float = 10.0
    # Seconds between SSE keep-alive comments on /events.
    keepalive_seconds: float = 15.0
    # Seconds a cached role is trusted before it is checked with the core again.
    role_refresh_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdminConfig:
        e = os.environ if env is None else env
        token = env_str(e, "CCAPI_ADMIN_TOKEN", "") or read_token_file(e)
        secure = e.get("CCAPI_ADMIN_SECURE_COOKIES", "").strip().lower() or "auto"
        if secure not in ("auto", "always", "never"):
            raise ValueError("CCAPI_ADMIN_SECURE_COOKIES must be auto, always or never")
        return cls(
            host=env_str(e, "CCAPI_HOST", "127.0.0.1"),
            port=env_int(e, "CCAPI_ADMIN_PORT", 8001),
            core_addr=core_addr(e),
            admin_token=token,
            secret_key=env_str(e, "CCAPI_ADMIN_SECRET", "") or derive_secret(token),
            idle_timeout_seconds=max(60, env_int(e, "CCAPI_ADMIN_IDLE_MINUTES", 30) * 60),
            secure_cookies=secure,
            trust_proxy=_bool(e, "CCAPI_ADMIN_TRUST_PROXY", False),
            workers=max(1, env_int(e, "CCAPI_ADMIN_WORKERS", 1)),
        )
