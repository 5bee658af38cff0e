"""Shared pieces of the live layer: gunicorn facade in front of the real core.

The `core` and `model_double` fixtures come from tests/conftest.py; when that
stack cannot be imported the live tests skip with the reason.
"""

from __future__ import annotations

import time

import pytest

from claudecode.v1 import admin_pb2, admin_pb2_grpc

try:
    from tests.model_double import ModelDouble, RecordedRequest, Reply
    from tests.stack import CoreProcess, claude_processes_in, start_core
except ImportError as exc:  # pragma: no cover - only while the stack is missing
    pytest.skip(f"live stack not importable: {exc}", allow_module_level=True)

__all__ = [
    "CoreProcess",
    "ModelDouble",
    "RecordedRequest",
    "Reply",
    "claude_processes_in",
    "log_row",
    "start_core",
    "user_texts",
]


def user_texts(req: RecordedRequest) -> list[str]:
    """The user texts Claude Code sent the model, oldest first."""
    texts: list[str] = []
    for message in req.messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                b.get("text", "")
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            ]
    return texts



def log_row(core: CoreProcess, endpoint: str, request_id: str) -> admin_pb2.RequestLog:
    """The core's request-log row of ``request_id`` at ``endpoint``, once written."""
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = admin.ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(endpoint=endpoint, page_size=500),
                metadata=core.admin_metadata(),
            ).logs
            row: admin_pb2.RequestLog | None = next(
                (r for r in logs if r.request_id == request_id), None
            )
            if row is not None:
                return row
            time.sleep(0.2)
    raise AssertionError(f"no log row for {request_id} at {endpoint}")
