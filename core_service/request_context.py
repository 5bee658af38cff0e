"""What one RPC did, gathered while it runs and logged when it ends."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field

from claudecode.v1 import events_pb2 as ev
from core_service.keys import KeyInfo


@dataclass
class RequestRecord:
    method: str
    endpoint: str
    request_id: str
    started: float = field(default_factory=time.monotonic)
    time_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    key: KeyInfo | None = None
    model: str = ""
    session_id: str = ""
    turn_id: str = ""
    usage: ev.Usage = field(default_factory=ev.Usage)
    tools: list[str] = field(default_factory=list)
    files_changed: int = 0
    first_text_at: float | None = None
    stream: bool = False
    request_body: str = ""
    response_body: str = ""
    # True once the final event of a turn was sent: a client that hangs up
    # after it got its answer did not cancel anything.
    completed: bool = False
    # Response metadata to send (x-ratelimit-*).
    headers: dict[str, str] = field(default_factory=dict)

    def mark_text(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()

    @property
    def ttft_ms(self) -> int:
        if self.first_text_at is None:
            return 0
        return int((self.first_text_at - self.started) * 1000)


CURRENT: contextvars.ContextVar[RequestRecord] = contextvars.ContextVar("ccapi_request")


def current() -> RequestRecord | None:
    return CURRENT.get(None)
