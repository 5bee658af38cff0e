"""Reading one RunTurn stream: shared by the chat and responses features.

:class:`Reader` wakes up for keep-alives and client disconnects without ever
cancelling a pending read (that would cancel the RPC); :func:`wait_started`
waits for TurnStarted, which the core always sends first, so HTTP errors before
it keep their status code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio

from claudecode.v1 import agent_pb2, events_pb2
from http_facade.errors import SERVER_ERROR, ApiError, from_rpc_error, from_turn_failed

PING = object()
GONE = object()

FILE_KINDS = {
    events_pb2.FILE_CHANGE_KIND_CREATED: "created",
    events_pb2.FILE_CHANGE_KIND_MODIFIED: "modified",
    events_pb2.FILE_CHANGE_KIND_DELETED: "deleted",
}


class Reader:
    """Reads a RunTurn call, waking up for keep-alives and client disconnects."""

    def __init__(self, call: Any, gone: asyncio.Event, ping_every: float) -> None:
        self.call = call
        self.ping_every = ping_every
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
            return task.result()
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
