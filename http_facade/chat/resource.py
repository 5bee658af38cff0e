"""POST /v1/chat/completions: one RunTurn call per request, JSON or SSE out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import falcon.asgi
import grpc.aio

from http_facade.body import read_json
from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import ApiError
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

from .translate import (
    TurnState,
    builtin_tools_of,
    session_id_of,
    to_run_turn_request,
    validate_request,
)

log = logging.getLogger(__name__)

_DONE = falcon.asgi.SSEvent(data=b"[DONE]")


class ChatCompletions:
    def __init__(self, core: CoreClient, config: FacadeConfig) -> None:
        self.core = core
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, body_limit(req, self.config.max_body_bytes))
        chat = validate_request(body)
        request_id: str = req.context.request_id
        body_model = chat.body
        run = to_run_turn_request(
            chat,
            session_id=session_id_of(body_model, req.get_header("X-Session-Id")),
            request_id=request_id,
            builtin=builtin_tools_of(body_model, req.get_header(BUILTIN_TOOLS_HEADER)),
        )
        md = auth_metadata(req.get_header("Authorization"), request_id, req.uri_template)
        stream = bool(body_model.stream)
        include_usage = bool(
            stream and body_model.stream_options and body_model.stream_options.include_usage
        )
        # A structured answer is exactly the JSON document: no summary after it.
        summary = self.config.file_summary and not run.HasField("output_format")
        state = TurnState(
            include_usage=include_usage,
            file_summary=summary,
            legacy_functions=chat.legacy,
        )

        turn = await start_turn(
            req,
            self.core.run_turn(run, md),
            stream=stream,
            keepalive_seconds=self.config.keepalive_seconds,
        )
        state.start(turn.started, body_model.model)
        await turn.set_headers(resp, state.session_id)
        if stream:
            stream_events(resp, self._events(turn, state, request_id))
            return
        try:
            await collect(turn.reader, state.on_event)
        finally:
            turn.close()
        resp.media = state.completion()

    async def _events(
        self, turn: StartedTurn, state: TurnState, request_id: str
    ) -> AsyncIterator[falcon.asgi.SSEvent]:
        try:
            yield sse_json(state.chunk({"role": "assistant", "content": ""}))
            async for ev in read_turn(turn.reader):
                if ev is PING:
                    yield falcon.asgi.SSEvent(comment="ping")
                    continue
                if ev is GONE:
                    log.info("client went away; cancelling turn %s (%s)", state.turn_id, request_id)
                    return
                if isinstance(ev, ApiError):
                    yield sse_json(ev.body())
                    yield _DONE
                    return
                if ev is grpc.aio.EOF:
                    break
                delta = state.on_event(ev)
                if delta:
                    yield sse_json(state.chunk(delta))
            summary = state.summary()
            if summary:
                yield sse_json(state.chunk({"content": summary}))
            yield sse_json(state.final_chunk())
            if state.include_usage:
                yield sse_json(state.usage_chunk())
            yield _DONE
        finally:
            turn.close()
