"""POST /v1/responses and the stored-response endpoints, over AgentService."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import falcon.asgi
import grpc
import grpc.aio

from http_facade.body import read_json
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import ApiError, from_rpc_error, invalid_request
from http_facade.live_settings import body_limit
from http_facade.tool_calls import BUILTIN_TOOLS_HEADER
from http_facade.turns import (
    GONE,
    PING,
    StartedTurn,
    collect,
    read_turn,
    sse_json,
    start_turn,
    stream_events,
)

from . import background
from .echo import Echo
from .request import for_responses, run_turn_request_of, turn_id_of
from .state import Event, ResponseState
from .stored import input_items, page
from .websocket import ResponsesSocket

log = logging.getLogger(__name__)


def _sse(event: Event) -> falcon.asgi.SSEvent:
    return sse_json(event, event["type"])


def _metadata(req: falcon.asgi.Request) -> list[tuple[str, str]]:
    return auth_metadata(req.get_header("Authorization"), req.context.request_id, req.uri_template)


class Responses:
    """POST /v1/responses: one RunTurn call, JSON or SSE out. GET upgraded to a
    WebSocket: WebSocket mode (responses/websocket.py)."""

    def __init__(self, socket: ResponsesSocket) -> None:
        self.core = socket.core
        self.config = socket.config
        self.socket = socket

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await self.socket.serve(req, ws)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, body_limit(req, self.config.max_body_bytes))
        request_id: str = req.context.request_id
        create, run = run_turn_request_of(
            body, request_id=request_id, builtin_header=req.get_header(BUILTIN_TOOLS_HEADER)
        )
        if create.background:
            await background.create(
                req, resp, self.core, create, run, _metadata(req), self.config.keepalive_seconds
            )
            return
        state = ResponseState(echo=Echo.of_request(create))
        stream = bool(create.stream)

        try:
            turn = await start_turn(
                req,
                self.core.run_turn(run, _metadata(req)),
                stream=stream,
                keepalive_seconds=self.config.keepalive_seconds,
            )
        except ApiError as err:
            raise for_responses(err, create.previous_response_id) from None
        first = state.start(turn.started, create.model or "")
        await turn.set_headers(resp, state.session_id)
        if stream:
            stream_events(resp, self._events(turn, state, first, request_id))
            return
        try:
            if not await collect(turn.reader, state.on_event):
                state.finish("incomplete")
        finally:
            turn.close()
        resp.media = state.response()

    async def _events(
        self, turn: StartedTurn, state: ResponseState, first: list[Event], request_id: str
    ) -> AsyncIterator[falcon.asgi.SSEvent]:
        try:
            for event in first:
                yield _sse(event)
            async for ev in read_turn(turn.reader):
                if ev is PING:
                    yield falcon.asgi.SSEvent(comment="ping")
                    continue
                if ev is GONE:
                    log.info("client went away; cancelling turn %s (%s)", state.turn_id, request_id)
                    return
                for event in state.on_read(ev):
                    yield _sse(event)
        finally:
            turn.close()


class Response:
    """GET and DELETE /v1/responses/{response_id}."""

    def __init__(self, core: CoreClient, keepalive_seconds: float = 15.0) -> None:
        self.core = core
        self.keepalive_seconds = keepalive_seconds

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        stream = background.check_get_params(req)
        turn = await _call(self.core.get_turn(turn_id_of(response_id), _metadata(req)), response_id)
        if stream:
            background.stream_stored(
                req, resp, self.core, turn, _metadata(req), self.keepalive_seconds
            )
            return
        resp.media = background.response_of(turn)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        await _call(self.core.delete_turn(turn_id_of(response_id), _metadata(req)), response_id)
        resp.media = {"id": response_id, "object": "response", "deleted": True}


class ResponseCancel:
    """POST /v1/responses/{response_id}/cancel: stops a running turn."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        turn = await _call(
            self.core.cancel_turn(turn_id_of(response_id), _metadata(req)), response_id
        )
        resp.media = background.response_of(turn)


class ResponseInputItems:
    """GET /v1/responses/{response_id}/input_items: a cursor page."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        limit = _int_param(req, "limit", 20, 1, 100)
        order = req.get_param("order") or "desc"
        if order not in ("asc", "desc"):
            raise invalid_request("order must be 'asc' or 'desc'.", "order", "invalid_value")
        turn = await _call(self.core.get_turn(turn_id_of(response_id), _metadata(req)), response_id)
        resp.media = page(input_items(turn), limit=limit, order=order, after=req.get_param("after"))


def _int_param(req: falcon.asgi.Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid_request(
            f"'{name}' must be an integer from {low} to {high}.", name, "invalid_value"
        )
    return value


async def _call(awaitable: Any, response_id: str) -> Any:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as err:
        raise for_responses(from_rpc_error(err, started=False), response_id) from None
