"""The facade's settings, read from the environment (see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {raw!r}")


@dataclass(frozen=True)
class FacadeConfig:
    """Everything the HTTP facade needs; it keeps no other state."""

    host: str = "127.0.0.1"
    port: int = 8000
    core_addr: str = "127.0.0.1:50051"
    workers: int = 2
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = ()
    # Seconds without any event from the core after which a `: ping` comment is sent.
    keepalive_seconds: float = 15.0
    # Deadline of the short unary calls (models, health); turns have none.
    unary_timeout_seconds: float = 10.0
    # Seconds gunicorn waits for in-flight requests on shutdown.
    graceful_timeout_seconds: int = 30
    # Append a markdown summary of changed files to chat answers (CCAPI_FILE_SUMMARY=0: off).
    file_summary: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FacadeConfig:
        """Reads CCAPI_* variables; unset ones take the defaults above."""
        e = os.environ if env is None else env
        grpc_port = _int(e, "CCAPI_GRPC_PORT", 50051)
        origins = tuple(o.strip() for o in e.get("CCAPI_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            host=e.get("CCAPI_HOST", "").strip() or "127.0.0.1",
            port=_int(e, "CCAPI_HTTP_PORT", 8000),
            core_addr=e.get("CCAPI_CORE_ADDR", "").strip() or f"127.0.0.1:{grpc_port}",
            workers=max(1, _int(e, "CCAPI_HTTP_WORKERS", 2)),
            max_body_bytes=max(1, _int(e, "CCAPI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            cors_origins=origins,
            keepalive_seconds=max(0.05, _float(e, "CCAPI_SSE_KEEPALIVE_SECONDS", 15.0)),
            unary_timeout_seconds=max(0.1, _float(e, "CCAPI_CORE_TIMEOUT_SECONDS", 10.0)),
            file_summary=_bool(e, "CCAPI_FILE_SUMMARY", True),
        )
