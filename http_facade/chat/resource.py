"""POST /v1/chat/completions: one RunTurn call per request, JSON or SSE out."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import falcon.asgi
import grpc
import grpc.aio

from http_facade import disconnect
from http_facade.body import read_json
from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import SERVER_ERROR, ApiError, from_rpc_error

from .translate import (
    TurnState,
    session_id_of,
    to_run_turn_request,
    turn_failed_error,
    validate_request,
)

log = logging.getLogger(__name__)

_PING = object()
_GONE = object()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _data(obj: Any) -> falcon.asgi.SSEvent:
    return falcon.asgi.SSEvent(data=_json_bytes(obj))


_DONE = b"[DONE]"


class _Reader:
    """Reads a RunTurn call, waking up for keep-alives and client disconnects.

    A pending read is kept across wake-ups: cancelling a read would cancel the RPC.
    """

    def __init__(self, call: Any, gone: asyncio.Event, ping_every: float) -> None:
        self.call = call
        self.ping_every = ping_every
        self._read: asyncio.Task[Any] | None = None
        self._gone = asyncio.ensure_future(gone.wait())

    async def next(self) -> Any:
        """A RunTurnResponse, grpc.aio.EOF, _PING or _GONE; raises AioRpcError."""
        if self._read is None:
            self._read = asyncio.ensure_future(self.call.read())
        done, _ = await asyncio.wait(
            {self._read, self._gone}, timeout=self.ping_every,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._read in done:
            task, self._read = self._read, None
            return task.result()
        if self._gone in done:
            return _GONE
        return _PING

    def close(self) -> None:
        if not self.call.done():
            self.call.cancel()
        for task in (self._read, self._gone):
            if task is not None and not task.done():
                task.cancel()


class ChatCompletions:
    def __init__(self, core: CoreClient, config: FacadeConfig) -> None:
        self.core = core
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, self.config.max_body_bytes)
        chat = validate_request(body)
        request_id: str = req.context.request_id
        turn = to_run_turn_request(
            chat,
            session_id=session_id_of(chat, req.get_header("X-Session-Id")),
            request_id=request_id,
        )
        md = auth_metadata(req.get_header("Authorization"), request_id)
        gone = disconnect.gone_event(req.scope)
        stream = bool(chat.stream)
        include_usage = bool(stream and chat.stream_options and chat.stream_options.include_usage)
        state = TurnState(include_usage=include_usage)

        watcher = None if stream else disconnect.watch(req.scope)
        call = self.core.run_turn(turn, md)
        reader = _Reader(call, gone, self.config.keepalive_seconds)
        disconnect.on_disconnect(req.scope, reader.close)
        try:
            await self._start(reader, state, chat.model)
        except BaseException:
            reader.close()
            disconnect.stop(watcher)
            raise
        resp.set_header("X-Session-Id", state.session_id)
        if stream:
            resp.content_type = "text/event-stream"
            resp.set_header("X-Accel-Buffering", "no")
            resp.sse = self._events(reader, state, request_id)
            return
        try:
            await self._collect(reader, state)
        finally:
            reader.close()
            disconnect.stop(watcher)
        resp.media = state.completion()

    async def _start(self, reader: _Reader, state: TurnState, model: str) -> None:
        """Waits for TurnStarted (always first) before any header goes out."""
        while True:
            try:
                ev = await reader.next()
            except grpc.aio.AioRpcError as err:
                raise from_rpc_error(err, started=False) from None
            if ev is _PING:
                continue
            if ev is _GONE:
                raise ApiError(499, "The client closed the request.", code="cancelled")
            if ev is grpc.aio.EOF:
                raise ApiError(502, "The core ended the turn without any event.",
                               type=SERVER_ERROR, code="core_protocol_error")
            if ev.WhichOneof("event") == "failed":
                raise turn_failed_error(ev.failed)
            if ev.WhichOneof("event") != "started":
                raise ApiError(502, "The core did not start the turn properly.",
                               type=SERVER_ERROR, code="core_protocol_error")
            state.start(ev.started, model)
            return

    async def _collect(self, reader: _Reader, state: TurnState) -> None:
        while True:
            try:
                ev = await reader.next()
            except grpc.aio.AioRpcError as err:
                raise from_rpc_error(err) from None
            if ev is _PING:
                continue
            if ev is _GONE:
                raise ApiError(499, "The client closed the request.", code="cancelled")
            if ev is grpc.aio.EOF:
                return
            if ev.WhichOneof("event") == "failed":
                raise turn_failed_error(ev.failed)
            state.on_event(ev)
            if ev.WhichOneof("event") == "completed":
                return

    async def _events(
        self, reader: _Reader, state: TurnState, request_id: str
    ) -> AsyncIterator[falcon.asgi.SSEvent]:
        try:
            yield _data(state.chunk({"role": "assistant", "content": ""}))
            while True:
                try:
                    ev = await reader.next()
                except grpc.aio.AioRpcError as err:
                    yield _data(from_rpc_error(err).body())
                    yield falcon.asgi.SSEvent(data=_DONE)
                    return
                if ev is _PING:
                    yield falcon.asgi.SSEvent(comment="ping")
                    continue
                if ev is _GONE:
                    log.info("client went away; cancelling turn %s (%s)", state.turn_id,
                             request_id)
                    return
                if ev is grpc.aio.EOF:
                    break
                kind = ev.WhichOneof("event")
                if kind == "failed":
                    yield _data(turn_failed_error(ev.failed).body())
                    yield falcon.asgi.SSEvent(data=_DONE)
                    return
                delta = state.on_event(ev)
                if delta:
                    yield _data(state.chunk(delta))
                if kind == "completed":
                    break
            yield _data(state.final_chunk())
            if state.include_usage:
                yield _data(state.usage_chunk())
            yield falcon.asgi.SSEvent(data=_DONE)
        finally:
            reader.close()
