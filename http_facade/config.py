"""The facade's settings, read from the environment (see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ccapi_client.env import core_addr, env_bool, env_float, env_int, env_str
from ccapi_client.service_identity import admin_token_of, facade_credential

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


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
    # The facade's proof of identity to the core, derived from CCAPI_ADMIN_TOKEN
    # (empty: none; the core then logs calls as plain gRPC ones).
    credential: str = ""
    # Take the client's address from X-Forwarded-For (only behind a trusted proxy).
    trust_proxy: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FacadeConfig:
        """Reads CCAPI_* variables; unset ones take the defaults above."""
        e = os.environ if env is None else env
        origins = tuple(o.strip() for o in e.get("CCAPI_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            host=env_str(e, "CCAPI_HOST", "127.0.0.1"),
            port=env_int(e, "CCAPI_HTTP_PORT", 8000),
            core_addr=core_addr(e),
            workers=max(1, env_int(e, "CCAPI_HTTP_WORKERS", 2)),
            max_body_bytes=max(1, env_int(e, "CCAPI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            cors_origins=origins,
            keepalive_seconds=max(0.05, env_float(e, "CCAPI_SSE_KEEPALIVE_SECONDS", 15.0)),
            unary_timeout_seconds=max(0.1, env_float(e, "CCAPI_CORE_TIMEOUT_SECONDS", 10.0)),
            file_summary=env_bool(e, "CCAPI_FILE_SUMMARY", True),
            credential=facade_credential(admin_token_of(e)),
            trust_proxy=env_bool(e, "CCAPI_TRUST_PROXY", False),
        )
