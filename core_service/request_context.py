"""What the core knows about one RPC: who calls, from where, and (for a turn)
what it did; and the request-log row built from that, in one place.

The interceptor builds a `RequestContext` before the servicer runs; the
servicer takes it once (`current()`) and passes it down as an argument. A
turn's `TurnOutcome` travels back through `RequestContext.reply`, the one
channel gRPC leaves a handler besides its messages, and `log_entry` turns
context, status and outcome into the row.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from ccapi_client.status_table import http_status
from ccapi_client.telemetry import current_trace_id
from claudecode.v1 import agent_pb2
from core_service import request_log
from core_service.turns.admission import Caller
from core_service.turns.outcome import TurnOutcome


@dataclass(frozen=True)
class Actor:
    """Who is calling AdminService: a signed-in user, or the service itself."""

    username: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


class Reply:
    """Where a handler leaves its turn's outcome for the request log; written once."""

    def __init__(self) -> None:
        self._turn: TurnOutcome | None = None
        # A background turn took the call over: it writes the request-log row
        # when the turn ends, not the RPC that started it.
        self.detached = False

    @property
    def turn(self) -> TurnOutcome | None:
        return self._turn

    def report(self, outcome: TurnOutcome) -> None:
        if self._turn is not None:
            raise RuntimeError("a call reports its outcome once")
        self._turn = outcome


@dataclass(frozen=True)
class RequestContext:
    method: str
    # The public endpoint the request came through ("grpc:<method>" when called
    # directly), and the caller's request id.
    endpoint: str
    request_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # The call came from the facade (it presented the facade's credential):
    # only then are the endpoint, client address and stream flag its word.
    via_facade: bool = False
    # Who the request came from: the HTTP client's address when the facade
    # says so, else the gRPC peer's.
    client_address: str = ""
    # The client asked for a stream (SSE). A turn called directly over gRPC is one.
    client_stream: bool = True
    # Set once authenticated: an API key's caller, or AdminService's actor.
    caller: Caller | None = None
    actor: Actor | None = None
    started: float = field(default_factory=time.monotonic)
    time_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    reply: Reply = field(default_factory=Reply, compare=False)
    # Made inside the call's span (the trace interceptor runs first).
    trace_id: str = field(default_factory=current_trace_id)

    def ms_since_start(self, at: float | None = None) -> int:
        return int(((time.monotonic() if at is None else at) - self.started) * 1000)


CURRENT: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("ccapi_request")


def current() -> RequestContext:
    """The running RPC's context; servicers call this once, at their top."""
    return CURRENT.get()


def outcome_name(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.OK:
        return "ok"
    if code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
        return "cancelled"
    return "error"


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def final_status(response: object) -> tuple[grpc.StatusCode, str, str] | None:
    """The status a turn's last event gave the client, or None for other events.

    Once a TurnFailed is sent the client has its answer (the facade turns it
    into the HTTP error and hangs up at once), whatever happens to the call
    after: the request log records that, not a cancellation.
    """
    if not isinstance(response, agent_pb2.RunTurnResponse):
        return None
    event = response.WhichOneof("event")
    if event == "completed":
        return grpc.StatusCode.OK, "", ""
    if event == "failed":
        failed = response.failed
        code = _CODES.get(failed.code, grpc.StatusCode.UNKNOWN)
        return code, failed.message, failed.reason
    return None


def log_entry(
    call: RequestContext, code: grpc.StatusCode, reason: str, error: str, bodies: bool
) -> request_log.LogEntry:
    """The request-log row of one API request."""
    key = call.caller.key if call.caller is not None else None
    turn = call.reply.turn or TurnOutcome(request_json="")
    usage = turn.usage
    return request_log.LogEntry(
        time_ms=call.time_ms,
        key_id=key.id if key else "",
        key_name=key.name if key else "",
        endpoint=call.endpoint,
        model=turn.model,
        # What an OpenAI client saw: the facade's own table decides.
        status=http_status(code, reason),
        outcome=outcome_name(code),
        latency_ms=call.ms_since_start(),
        ttft_ms=turn.ttft_ms,
        queue_ms=turn.queue_ms,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens,
        cache_write_tokens=usage.cache_creation_input_tokens,
        cost_usd=usage.cost_usd,
        session_id=turn.session_id,
        turn_id=turn.turn_id,
        tools_used=list(turn.tools),
        files_changed=turn.files_changed,
        # Redacted and truncated once, by the writer as it takes the entry.
        error=error,
        stream=call.reply.turn is not None and call.client_stream,
        request_id=call.request_id,
        trace_id=call.trace_id,
        request_body=turn.request_json if bodies else "",
        response_body=turn.text if bodies else "",
    )
