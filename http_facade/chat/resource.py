"""POST /v1/chat/completions: one RunTurn call per request, JSON or SSE out."""

from __future__ import annotations

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
from http_facade.errors import from_rpc_error, rate_limit_headers
from http_facade.live_settings import body_limit
from http_facade.turns import GONE, PING, Reader, client_gone, turn_failed_error, wait_started

from .translate import TurnState, session_id_of, to_run_turn_request, validate_request

log = logging.getLogger(__name__)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _data(obj: Any) -> falcon.asgi.SSEvent:
    return falcon.asgi.SSEvent(data=_json_bytes(obj))


_DONE = b"[DONE]"


class ChatCompletions:
    def __init__(self, core: CoreClient, config: FacadeConfig) -> None:
        self.core = core
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, body_limit(req, self.config.max_body_bytes))
        chat = validate_request(body)
        request_id: str = req.context.request_id
        turn = to_run_turn_request(
            chat,
            session_id=session_id_of(chat, req.get_header("X-Session-Id")),
            request_id=request_id,
        )
        md = auth_metadata(req.get_header("Authorization"), request_id, req.uri_template)
        gone = disconnect.gone_event(req.scope)
        stream = bool(chat.stream)
        include_usage = bool(stream and chat.stream_options and chat.stream_options.include_usage)
        state = TurnState(include_usage=include_usage, file_summary=self.config.file_summary)

        watcher = None if stream else disconnect.watch(req.scope)
        call = self.core.run_turn(turn, md)
        reader = Reader(call, gone, self.config.keepalive_seconds)
        disconnect.on_disconnect(req.scope, reader.close)
        try:
            state.start(await wait_started(reader), chat.model)
        except BaseException:
            reader.close()
            disconnect.stop(watcher)
            raise
        resp.set_header("X-Session-Id", state.session_id)
        for name, value in rate_limit_headers(await call.initial_metadata()).items():
            resp.set_header(name, value)
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

    async def _collect(self, reader: Reader, state: TurnState) -> None:
        while True:
            try:
                ev = await reader.next()
            except grpc.aio.AioRpcError as err:
                raise from_rpc_error(err) from None
            if ev is PING:
                continue
            if ev is GONE:
                raise client_gone()
            if ev is grpc.aio.EOF:
                return
            if ev.WhichOneof("event") == "failed":
                raise turn_failed_error(ev.failed)
            state.on_event(ev)
            if ev.WhichOneof("event") == "completed":
                return

    async def _events(
        self, reader: Reader, state: TurnState, request_id: str
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
                if ev is PING:
                    yield falcon.asgi.SSEvent(comment="ping")
                    continue
                if ev is GONE:
                    log.info("client went away; cancelling turn %s (%s)", state.turn_id, request_id)
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
            summary = state.summary()
            if summary:
                yield _data(state.chunk({"content": summary}))
            yield _data(state.final_chunk())
            if state.include_usage:
                yield _data(state.usage_chunk())
            yield falcon.asgi.SSEvent(data=_DONE)
        finally:
            reader.close()
