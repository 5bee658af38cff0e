"""Structured logs: one JSON object per line on stderr, each with the trace
id of the span it was written in (the formatter is shared with the facade
and the admin site: `ccapi_client.json_logs`)."""

from __future__ import annotations

from ccapi_client import json_logs
from ccapi_client.json_logs import JsonFormatter as JsonFormatter

# Third-party chatter stays at warning unless we debug.
NOISY = ("alembic", "sqlalchemy", "asyncio", "grpc", "httpx", "opentelemetry")


def configure(level: str = "info") -> None:
    json_logs.configure(level, NOISY)
