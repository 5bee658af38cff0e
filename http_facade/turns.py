"""Running one RunTurn call for an HTTP request: shared by the chat and responses features.

:class:`Reader` wakes up for keep-alives and client disconnects without ever
cancelling a pending read (that would cancel the RPC); :func:`wait_started`
waits for TurnStarted, which the core always sends first, so HTTP errors before
it keep their status code. :func:`start_turn` and :func:`read_turn` are the
request-side steps both APIs take around them; only what they render differs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import falcon.asgi
import grpc
import grpc.aio

from claudecode.v1 import agent_pb2, events_pb2
from http_facade import disconnect
from http_facade.errors import (
    SERVER_ERROR,
    ApiError,
    from_rpc_error,
    from_turn_failed,
    rate_limit_headers,
)

PING = object()
GONE = object()

FILE_KINDS = {
    events_pb2.FILE_CHANGE_KIND_CREATED: "created",
    events_pb2.FILE_CHANGE_KIND_MODIFIED: "modified",
    events_pb2.FILE_CHANGE_KIND_DELETED: "deleted",
}


class Reader:
    """Reads a RunTurn call, waking up for keep-alives and client disconnects."""

    def __init__(
        self, call: Any, gone: asyncio.Event, ping_every: float, timing: Any = None
    ) -> None:
        self.call = call
        self.ping_every = ping_every
        # The request's metrics timing (web_metrics.RequestTiming), told of the first text.
        self._timing = timing
        self._read: asyncio.Task[Any] | None = None
        self._gone = asyncio.ensure_future(gone.wait())

    async def next(self) -> Any:
        """A RunTurnResponse, grpc.aio.EOF, PING or GONE; raises AioRpcError."""
        if self._read is None:
            self._read = asyncio.ensure_future(self.call.read())
        done, _ = await asyncio.wait(
            {self._read, self._gone},
            timeout=self.ping_every,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._read in done:
            task, self._read = self._read, None
            result = task.result()
            if (
                self._timing is not None
                and isinstance(result, agent_pb2.RunTurnResponse)
                and result.WhichOneof("event") == "text_delta"
            ):
                self._timing.first_token()
            return result
        if self._gone in done:
            return GONE
        return PING

    def close(self) -> None:
        if not self.call.done():
            self.call.cancel()
        for task in (self._read, self._gone):
            if task is not None and not task.done():
                task.cancel()


def client_gone() -> ApiError:
    return ApiError(499, "The client closed the request.", code="cancelled")


def turn_failed_error(ev: events_pb2.TurnFailed) -> ApiError:
    """The HTTP error for a TurnFailed event."""
    return from_turn_failed(ev.code, ev.message, ev.reason, ev.retry_after_seconds)


async def wait_started(reader: Reader) -> events_pb2.TurnStarted:
    """The TurnStarted event, or the ApiError the request ends with."""
    while True:
        try:
            ev = await reader.next()
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err, started=False) from None
        if ev is PING:
            continue
        if ev is GONE:
            raise client_gone()
        if ev is grpc.aio.EOF:
            raise ApiError(
                502,
                "The core ended the turn without any event.",
                type=SERVER_ERROR,
                code="core_protocol_error",
            )
        assert isinstance(ev, agent_pb2.RunTurnResponse)
        if ev.WhichOneof("event") == "failed":
            raise turn_failed_error(ev.failed)
        if ev.WhichOneof("event") != "started":
            raise ApiError(
                502,
                "The core did not start the turn properly.",
                type=SERVER_ERROR,
                code="core_protocol_error",
            )
        return ev.started


@dataclass
class StartedTurn:
    """A RunTurn call the core has started, and what has to be closed after it."""

    call: Any
    reader: Reader
    started: events_pb2.TurnStarted
    watcher: asyncio.Task[None] | None

    def close(self) -> None:
        self.reader.close()
        disconnect.stop(self.watcher)

    async def set_headers(self, resp: falcon.asgi.Response, session_id: str) -> None:
        """X-Session-Id and the core's rate-limit headers (known once the turn started)."""
        resp.set_header("X-Session-Id", session_id)
        for name, value in rate_limit_headers(await self.call.initial_metadata()).items():
            resp.set_header(name, value)


async def start_turn(
    req: falcon.asgi.Request, call: Any, *, stream: bool, keepalive_seconds: float
) -> StartedTurn:
    """Waits for TurnStarted on a new RunTurn ``call``; on any error, closes it first."""
    # Nothing else reads ASGI receive once a non-streaming body is read, so
    # such a request watches for http.disconnect itself.
    watcher = None if stream else disconnect.watch(req.scope)
    timing = getattr(req.context, "timing", None)
    reader = Reader(call, disconnect.gone_event(req.scope), keepalive_seconds, timing)
    disconnect.on_disconnect(req.scope, reader.close)
    try:
        started = await wait_started(reader)
    except BaseException:
        reader.close()
        disconnect.stop(watcher)
        raise
    req.context.model = started.model  # the facade's metrics label requests with it
    return StartedTurn(call, reader, started, watcher)


async def read_turn(reader: Reader) -> AsyncIterator[Any]:
    """The rest of a started turn, ending after its ``completed`` event.

    Yields each RunTurnResponse and PING for a keep-alive. It ends early with
    GONE (the client went away), grpc.aio.EOF (the call ended without
    ``completed``) or an ApiError (the RPC failed, or TurnFailed).
    """
    while True:
        try:
            ev = await reader.next()
        except grpc.aio.AioRpcError as err:
            yield from_rpc_error(err)
            return
        if ev is PING:
            yield ev
            continue
        if ev is GONE or ev is grpc.aio.EOF:
            yield ev
            return
        kind = ev.WhichOneof("event")
        if kind == "failed":
            yield turn_failed_error(ev.failed)
            return
        yield ev
        if kind == "completed":
            return


async def collect(
    reader: Reader, on_event: Callable[[agent_pb2.RunTurnResponse], object]
) -> bool:
    """Feeds a non-streaming turn to ``on_event``: True at ``completed``, False at EOF."""
    async for ev in read_turn(reader):
        if isinstance(ev, ApiError):
            raise ev
        if ev is GONE:
            raise client_gone()
        if ev is grpc.aio.EOF:
            return False
        if ev is not PING:
            on_event(ev)
    return True


def stream_events(resp: falcon.asgi.Response, events: AsyncIterator[falcon.asgi.SSEvent]) -> None:
    resp.content_type = "text/event-stream"
    resp.set_header("X-Accel-Buffering", "no")
    resp.sse = events


def sse_json(obj: Any, event: str | None = None) -> falcon.asgi.SSEvent:
    """An SSE event whose data is ``obj`` as compact JSON."""
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return falcon.asgi.SSEvent(event=event, data=data)


@dataclass(kw_only=True)
class TurnRecord:
    """What both APIs keep of a turn for their ``claude_code`` extension object."""

    session_id: str = ""
    turn_id: str = ""
    model: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: events_pb2.Usage | None = None
    completed: events_pb2.TurnCompleted | None = None

    def begin(self, started: events_pb2.TurnStarted, requested_model: str) -> None:
        self.session_id = started.session_id
        self.turn_id = started.turn_id
        self.model = started.model or requested_model

    def record(self, ev: agent_pb2.RunTurnResponse) -> None:
        """Keeps a file_change, usage or completed event; ignores the others."""
        kind = ev.WhichOneof("event")
        if kind == "file_change":
            self.files[ev.file_change.path] = file_dict(ev.file_change)
        elif kind == "usage":
            self.usage = ev.usage
        elif kind == "completed":
            self.record_completed(ev.completed)

    def record_completed(self, c: events_pb2.TurnCompleted) -> None:
        self.completed = c
        if c.HasField("usage"):
            self.usage = c.usage
        for f in c.files:
            self.files[f.path] = file_dict(f)
        if c.session_id:
            self.session_id = c.session_id

    def claude_code(self) -> dict[str, Any]:
        c = self.completed
        return {
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "files": list(self.files.values()),
            "cost_usd": self.usage.cost_usd if self.usage is not None else None,
            "num_turns": c.num_turns if c is not None else None,
        }


def file_dict(f: events_pb2.FileChange) -> dict[str, Any]:
    """A FileChange as the `claude_code.files[]` JSON of both APIs."""
    return {
        "path": f.path,
        "kind": FILE_KINDS.get(f.kind, "unspecified"),
        "size_bytes": f.size_bytes,
        "binary": f.binary,
        "diff": f.diff or None,
        "diff_truncated": f.diff_truncated,
    }
