"""Structured logs: one JSON object per line on stderr, with the trace id of
the span the line was written in (shared by the core, the facade and the
admin site)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from ccapi_client.telemetry import current_span_id, current_trace_id

# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Field names whose values are never written, whatever a caller passes.
_SECRET_FIELDS = {"authorization", "api_key", "secret", "password", "token"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Formatted in the thread that logged, so the span is the caller's.
        trace_id = current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = current_span_id()
        for name, value in vars(record).items():
            if name in _STANDARD or name.startswith("_"):
                continue
            entry[name] = "[redacted]" if name.lower() in _SECRET_FIELDS else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# The loggers gunicorn and its uvicorn workers write through: their handlers are
# gunicorn's own (set up before our app loads), so only their format is ours.
SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access", "uvicorn.error", "uvicorn.access")


def format_server_logs() -> None:
    """JSON lines for gunicorn's and uvicorn's own log lines too (access lines
    included), so each request's access line carries its trace id: uvicorn
    writes it while the request's server span is current. Called in a worker
    after gunicorn has set up its handlers."""
    formatter = JsonFormatter()
    for name in SERVER_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


def configure(level: str = "info", noisy: tuple[str, ...] = ()) -> None:
    """JSON lines on stderr for the root logger; `noisy` loggers stay at warning
    unless we debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in noisy:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
