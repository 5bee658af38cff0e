"""Background mode of the Responses API: `background: true` on create, and
streaming a background response again (`GET ...?stream=true&starting_after=N`).

The core runs the turn detached (StartBackgroundTurn) and journals its
events; this module renders them. Sequence numbers come from translating the
journal with a fresh :class:`ResponseState` from its first event, so every
stream of one response numbers its events alike: a stream resumed with
`starting_after=N` sends exactly the events numbered above N. A client that
goes away ends only its stream, never the turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import falcon.asgi
import grpc
import grpc.aio

from claudecode.v1 import agent_pb2, events_pb2
from http_facade import disconnect
from http_facade.core_client import CoreClient, Metadata
from http_facade.errors import from_rpc_error, invalid_request, rate_limit_headers
from http_facade.turns import GONE, PING, Reader, sse_json, stream_events, turn_failed_error

from .echo import Echo
from .protocol import ResponseCreateRequest
from .request import for_responses
from .state import Event, ResponseState
from .stored import from_turn

QUEUED = agent_pb2.TURN_STATUS_QUEUED


def check_create(create: ResponseCreateRequest) -> None:
    """A background response is retrieved later, so it must be stored."""
    if create.background and create.store is False:
        raise invalid_request(
            "Background mode needs store=true: a background response is retrieved later.",
            "background",
            "invalid_value",
        )


def shaped(obj: dict[str, Any], turn: agent_pb2.Turn | None = None) -> dict[str, Any]:
    """A response object of a background turn: `background` true, and
    `queued` while it waits for a running slot."""
    obj["background"] = True
    if turn is not None and turn.status == QUEUED:
        obj["status"] = "queued"
    return obj


def response_of(turn: agent_pb2.Turn) -> dict[str, Any]:
    """A stored turn as a response object (GET, cancel), background or not."""
    obj = from_turn(turn)
    return shaped(obj, turn) if turn.background else obj


def _shaped_event(event: Event, turn: agent_pb2.Turn) -> Event:
    response = event.get("response")
    if isinstance(response, dict):
        shaped(response, turn if event["type"] == "response.created" else None)
    return event


def _started_of(turn: agent_pb2.Turn) -> events_pb2.TurnStarted:
    return events_pb2.TurnStarted(
        session_id=turn.session_id,
        turn_id=turn.id,
        model=turn.model,
        created_at=turn.created_at,
        parent_turn_id=turn.parent_turn_id,
    )


async def create(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    core: CoreClient,
    create: ResponseCreateRequest,
    run: agent_pb2.RunTurnRequest,
    metadata: Metadata,
    keepalive_seconds: float,
) -> None:
    """POST /v1/responses with background: the accepted response, or its stream."""
    check_create(create)
    try:
        turn, initial = await core.start_background_turn(run, metadata)
    except grpc.aio.AioRpcError as err:
        raise for_responses(
            from_rpc_error(err, started=False), create.previous_response_id
        ) from None
    if turn.session_id:
        resp.set_header("X-Session-Id", turn.session_id)
    for name, value in rate_limit_headers(initial).items():
        resp.set_header(name, value)
    req.context.model = turn.model
    echo = Echo.of_request(create)
    if not create.stream:
        state = ResponseState(echo=echo)
        state.start(_started_of(turn), create.model or "")
        resp.media = shaped(state.response(), turn)
        return
    stream_events(
        resp, _follow(req, core, metadata, turn, echo, -1, keepalive_seconds, create.model or "")
    )


def stream_stored(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    core: CoreClient,
    turn: agent_pb2.Turn,
    metadata: Metadata,
    keepalive_seconds: float,
) -> None:
    """GET /v1/responses/{id}?stream=true[&starting_after=N]."""
    if not turn.background:
        raise invalid_request(
            "Only responses created with background=true can be streamed again.",
            "stream",
            "invalid_value",
        )
    after = starting_after(req)
    stream_events(
        resp, _follow(req, core, metadata, turn, Echo.of_turn(turn), after, keepalive_seconds, "")
    )


def starting_after(req: falcon.asgi.Request) -> int:
    """The `starting_after` cursor (-1: from the first event)."""
    raw = req.get_param("starting_after")
    if raw is None or raw == "":
        return -1
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise invalid_request(
            "'starting_after' must be a non-negative integer (a sequence_number).",
            "starting_after",
            "invalid_value",
        )
    return value


def check_get_params(req: falcon.asgi.Request) -> bool:
    """Whether GET streams; `starting_after` alone is refused (it needs stream)."""
    stream = bool(req.get_param_as_bool("stream"))
    if not stream and req.get_param("starting_after") not in (None, ""):
        raise invalid_request(
            "'starting_after' is only valid with stream=true.", "starting_after", "invalid_value"
        )
    return stream


async def _follow(
    req: falcon.asgi.Request,
    core: CoreClient,
    metadata: Metadata,
    turn: agent_pb2.Turn,
    echo: Echo,
    after: int,
    keepalive_seconds: float,
    requested_model: str,
) -> AsyncIterator[falcon.asgi.SSEvent]:
    """The journal of `turn` translated from its first event; the events
    numbered above `after` are sent.

    Every stream opens with `response.created` and `response.in_progress` at
    once (a queued turn has no events yet); the journal's TurnStarted only
    tells the session then."""
    state = ResponseState(echo=echo)
    call = core.stream_turn_events(turn.id, 0, metadata)
    reader = Reader(call, disconnect.gone_event(req.scope), keepalive_seconds)
    disconnect.on_disconnect(req.scope, reader.close)

    def fresh(events: list[Event]) -> list[falcon.asgi.SSEvent]:
        return [
            sse_json(_shaped_event(e, turn), e["type"])
            for e in events
            if e["sequence_number"] > after
        ]

    try:
        for sse in fresh(state.start(_started_of(turn), requested_model)):
            yield sse
        while True:
            try:
                item = await reader.next()
            except grpc.aio.AioRpcError as err:
                # The stream broke, not (necessarily) the turn: an `error` event,
                # and the client may resume from its last sequence_number.
                error = for_responses(from_rpc_error(err), "resp_" + turn.id)
                for sse in fresh(
                    [_error_event(state, str(error.code or "server_error"), error.message)]
                ):
                    yield sse
                return
            if item is PING:
                yield falcon.asgi.SSEvent(comment="ping")
                continue
            if item is GONE or item is grpc.aio.EOF:
                return  # the client left (the turn runs on), or the core ended the stream
            assert isinstance(item, agent_pb2.StreamTurnEventsResponse)
            if item.journal_full:
                for sse in fresh([_journal_full(state)]):
                    yield sse
                return
            event = item.event
            kind = event.WhichOneof("event")
            if kind == "started":
                state.begin(event.started, requested_model)
                continue
            if kind == "failed":
                events = state.fail(turn_failed_error(event.failed))
            else:
                events = state.on_event(event)
            for sse in fresh(events):
                yield sse
            if kind in ("completed", "failed"):
                return
    finally:
        reader.close()


def _journal_full(state: ResponseState) -> Event:
    """The `error` event for a journal that stopped keeping events."""
    return _error_event(
        state,
        "stream_truncated",
        "This response produced more events than the service keeps for a background "
        "response; it runs on. Retrieve it with GET /v1/responses/{id} for its result.",
    )


def _error_event(state: ResponseState, code: str, message: str) -> Event:
    """The `error` streaming event, numbered in the stream: the spec's
    `error` object, and its fields at the top level as OpenAI sends them."""
    event: Event = {
        "type": "error",
        "sequence_number": state.seq,
        "code": code,
        "message": message,
        "param": None,
        "error": {"type": "server_error", "code": code, "message": message, "param": None},
    }
    state.seq += 1
    return event
