"""The Responses API's WebSocket mode: ``GET /v1/responses`` upgraded to a WebSocket.

The client sends ``{"type": "response.create", ...}`` messages (the create
body's fields at the top level) and gets, for each, the same events the SSE
stream carries (``sequence_number`` from 0 per response), one response after
another. A message sent while a response runs waits behind it (a few at most).
Each message is held to the request body limit in force (the live one, as POST).
Errors before a response starts are the spec's ``WebSocketErrorEvent``:
``{"type": "error", "status", "error": {"type", "code", "message", "param"}}``.

Continuation. The core keeps every turn, ``store: false`` ones too, and
continues (or forks) the Claude Code session of the turn named as
``previous_turn_id``, exactly as over HTTP. What this module adds is the
connection's own state, which decides whether a ``previous_response_id`` may
be continued here: the ids of the responses this connection produced
(completed or incomplete), at most :data:`MAX_REMEMBERED`, the oldest
forgotten first. An id it does not know is continued only if it is a stored
response (a ``GetTurn`` of the key finds it); a ``store: false`` response of
another connection, or one forgotten, gets ``previous_response_not_found`` and
the client starts again with the full input. A continuation that fails evicts
the id it referenced. Nothing is re-sent: the session already holds the
conversation, so only the new input goes to the core.

``generate: false`` (Codex's warm-up: the tools, instructions and input of the
turn to come, and no answer wanted) runs nothing: it completes at once with no
output, and its input is kept on the connection (at most
:data:`MAX_WARMUPS` of them) so that the ``response.create`` continuing it runs
with that input followed by its own.

A disconnect cancels the running turn, as for SSE (the turn's reader watches
the connection's ``gone`` event). The connection lives at most
:data:`MAX_CONNECTION_SECONDS`, as OpenAI's does; past it, the next
``response.create`` gets ``websocket_connection_limit_reached`` and the socket
closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import falcon.asgi
import falcon.errors
import grpc
import grpc.aio

from ccapi_client.web_metrics import RequestTiming, SiteMetrics, outcome_of
from claudecode.v1 import events_pb2
from http_facade import client_address, disconnect
from http_facade.body import parse_json, too_large
from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient, auth_metadata
from http_facade.errors import ApiError, from_rpc_error, invalid_request, unsupported
from http_facade.live_settings import LiveSettings
from http_facade.rejections import RejectionReporter
from http_facade.tool_calls import BUILTIN_TOOLS_HEADER, responses_tools
from http_facade.turns import GONE, PING, read_turn, start_turn

from .echo import Echo
from .request import ENDPOINT, for_responses, run_turn_request_of, turn_id_of, validate_request
from .state import Event, ResponseState

log = logging.getLogger(__name__)

# Responses a connection remembers for continuation; past it the oldest is forgotten
# (continuing a forgotten store:false response is previous_response_not_found).
MAX_REMEMBERED = 64
# response.create messages waiting behind the running one; more are refused.
MAX_QUEUED = 4
# generate:false responses whose input a connection keeps; past it the oldest goes.
MAX_WARMUPS = 2
# As OpenAI: a connection serves responses for an hour, then the client reconnects.
MAX_CONNECTION_SECONDS = 3600.0
# WebSocket close codes (RFC 6455): a refused key, and a core that could not say.
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
# Client events acknowledged and otherwise ignored: Codex says it has read a response.
IGNORED_EVENTS = ("response.processed",)
# The metrics' method label of a response.create sent on the socket.
WEBSOCKET_METHOD = "websocket"

# Final statuses whose response may be continued.
_CONTINUABLE = ("completed", "incomplete")


@dataclass(frozen=True)
class Warmup:
    """A ``generate: false`` response: what the response continuing it runs with."""

    input: list[Any]
    previous_response_id: str | None


class ConnectionState:
    """The responses one connection produced, newest last: at most ``cap``, and
    at most ``warmups`` of them warm-ups (which hold their input)."""

    def __init__(self, cap: int = MAX_REMEMBERED, warmups: int = MAX_WARMUPS) -> None:
        self.cap = cap
        self.warmups = warmups
        self._ids: OrderedDict[str, Warmup | None] = OrderedDict()

    def remember(self, response_id: str, warmup: Warmup | None = None) -> None:
        self._ids[response_id] = warmup
        self._ids.move_to_end(response_id)
        held = [k for k, v in self._ids.items() if v is not None]
        for old in held[: max(0, len(held) - self.warmups)]:
            del self._ids[old]
        while len(self._ids) > self.cap:
            self._ids.popitem(last=False)

    def knows(self, response_id: str) -> bool:
        return response_id in self._ids

    def warmup(self, response_id: str) -> Warmup | None:
        return self._ids.get(response_id)

    def forget(self, response_id: str) -> None:
        self._ids.pop(response_id, None)

    def __len__(self) -> int:
        return len(self._ids)


def error_event(err: ApiError) -> Event:
    """An ApiError as the spec's WebSocketErrorEvent (whose ``code`` is a string:
    an error without a code of its own names its type there)."""
    error: dict[str, Any] = {
        "type": err.type,
        "code": err.code or err.type,
        "message": err.message,
        "param": err.param,
    }
    headers = err.headers()
    if headers:
        error["headers"] = headers
    return {"type": "error", "status": err.status, "error": error}


def previous_not_found(response_id: str) -> ApiError:
    return ApiError(
        400,
        f"Previous response with id '{response_id}' not found.",
        code="previous_response_not_found",
        param="previous_response_id",
    )


def create_body(message: Any) -> tuple[dict[str, Any], bool]:
    """A ``response.create`` message as the POST body it stands for (always
    streamed), and whether it asks for an answer (``generate``)."""
    if not isinstance(message, dict):
        raise invalid_request("A WebSocket message must be a JSON object.")
    body = dict(message)
    kind = body.pop("type", None)
    if kind != "response.create":
        raise invalid_request(
            f"Unsupported client event type {kind!r}: send 'response.create'.",
            "type",
            "invalid_value",
        )
    # Events stream by themselves here; Codex sends stream: true all the same.
    if body.get("stream") is False:
        raise unsupported("stream", "every response streams over the WebSocket")
    if body.get("background"):
        raise unsupported("background", "not over the WebSocket")
    generate = body.pop("generate", True)
    if not isinstance(generate, bool):
        raise invalid_request("'generate' must be a boolean.", "generate", "invalid_type")
    body["stream"] = True
    return body, generate


def with_warmup(body: dict[str, Any], warmup: Warmup) -> dict[str, Any]:
    """The body continuing a warm-up: its input first, then the body's own."""
    own = body.get("input")
    if isinstance(own, str):
        own = [{"type": "message", "role": "user", "content": own}]
    merged = {**body, "input": [*warmup.input, *(own if isinstance(own, list) else [])]}
    merged.pop("previous_response_id", None)
    if warmup.previous_response_id is not None:
        merged["previous_response_id"] = warmup.previous_response_id
    return merged


class _Closed(Exception):
    """The client went away while we were sending."""


class ResponsesSocket:
    """One WebSocket connection's loop: read messages, run one response at a time."""

    def __init__(
        self,
        core: CoreClient,
        config: FacadeConfig,
        settings: LiveSettings,
        metrics: SiteMetrics,
    ) -> None:
        self.core = core
        self.config = config
        # Each response.create is counted as a request of its own.
        self.metrics = metrics
        # The live body limit holds for each response.create, as for each POST.
        self.settings = settings
        self.report = RejectionReporter(core)

    async def serve(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        client_address.CURRENT.set(client_address.client_address(req, self.config.trust_proxy))
        connection = _Connection(self, req, ws)
        await connection.run()


class _Connection:
    def __init__(
        self, socket: ResponsesSocket, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket
    ) -> None:
        self.core = socket.core
        self.config = socket.config
        self.settings = socket.settings
        self.report = socket.report
        self.metrics = socket.metrics
        self.req = req
        self.ws = ws
        self.authorization = req.get_header("Authorization")
        self.state = ConnectionState()
        self.opened = time.monotonic()
        self._send_lock = asyncio.Lock()
        # The turn machinery (http_facade.turns) learns of a disconnect through
        # the scope, as it does for HTTP: the gone event, and cleanups that
        # cancel the running turn's gRPC call.
        _, self._run_cleanups = disconnect.install(req.scope, _never)
        self.gone = disconnect.gone_event(req.scope)

    async def run(self) -> None:
        refused = await self._check_key()
        await self.ws.accept()
        if refused is not None:
            await self._send_quietly(error_event(refused))
            await self.ws.close(POLICY_VIOLATION if refused.status < 500 else INTERNAL_ERROR)
            return
        inbox: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUED + 1)
        reader = asyncio.create_task(self._read(inbox))
        try:
            while (raw := await inbox.get()) is not None:
                if time.monotonic() - self.opened > MAX_CONNECTION_SECONDS:
                    await self._send_quietly(error_event(_connection_limit()))
                    break
                await self._respond(raw)
        except _Closed:
            pass
        finally:
            self._went_away()
            reader.cancel()
            if not self.ws.closed:
                await self.ws.close()

    async def _check_key(self) -> ApiError | None:
        """The key's refusal (the core decides), before anything runs on the connection.
        The core's request log has a row for it: the connection, under this endpoint."""
        metadata = auth_metadata(self.authorization, f"req_{uuid.uuid4().hex}", ENDPOINT)
        try:
            await self.core.list_models(metadata)
        except grpc.aio.AioRpcError as err:
            return from_rpc_error(err, started=False)
        return None

    def _went_away(self) -> None:
        self.gone.set()
        self._run_cleanups()

    async def _read(self, inbox: asyncio.Queue[str | None]) -> None:
        """Queues the client's messages; notices the disconnect even while a turn runs."""
        try:
            while True:
                try:
                    raw = await self.ws.receive_text()
                except falcon.errors.PayloadTypeError:
                    await self._send_quietly(
                        error_event(invalid_request("Send JSON text messages, not binary ones."))
                    )
                    continue
                if inbox.qsize() >= MAX_QUEUED:
                    busy = ApiError(
                        429,
                        f"More than {MAX_QUEUED} response.create messages are waiting on this "
                        "connection; wait for a response to finish.",
                        code="too_many_queued_requests",
                    )
                    await self._send_quietly(error_event(busy))
                    continue
                inbox.put_nowait(raw)
        except falcon.errors.WebSocketDisconnected:
            pass
        finally:
            # The running turn's reader sees it and the turn closes its call; the
            # cleanups are not run from here, which would cancel a read under it.
            self.gone.set()
            inbox.put_nowait(None)  # there is always room: the queue holds one more

    async def _send(self, event: Event) -> None:
        data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        async with self._send_lock:
            try:
                await self.ws.send_text(data)
            except falcon.errors.WebSocketDisconnected:
                raise _Closed from None

    async def _send_quietly(self, event: Event) -> None:
        try:
            await self._send(event)
        except _Closed:
            pass

    async def _respond(self, raw: str) -> None:
        """One response.create: a response streamed, or an error event."""
        request_id = f"req_{uuid.uuid4().hex}"
        previous: str | None = None
        # The metrics' clock and model for this message (start_turn fills them in).
        timing = self.req.context.timing = RequestTiming()
        self.req.context.model = None
        status = 200
        counted = True
        try:
            parsed = await self._parse(raw)
            if parsed is None:
                counted = False
                return
            body, generate = parsed
            previous = body.get("previous_response_id")
            previous = previous if isinstance(previous, str) else None
            items = body.get("input")
            log.debug(
                "response.create %s: previous=%s generate=%s items=%s",
                request_id,
                previous,
                generate,
                len(items) if isinstance(items, list) else type(items).__name__,
            )
            if generate:
                await self._stream(body, request_id)
            else:
                await self._warm_up(body, request_id)
        except ApiError as err:
            status = err.status
            if previous is not None:
                self.state.forget(previous)
            if not err.from_core:
                self.req.context.request_id = request_id
                self.req.context.raw_body = raw.encode()
                self.report(self.req, err)
            await self._send(error_event(for_responses(err, previous)))
        except _Closed:
            status = 499  # the client left mid-response, as for HTTP
            raise
        finally:
            if counted:
                model = str(self.req.context.model or "none")
                self.metrics.count(
                    ENDPOINT, WEBSOCKET_METHOD, model, status, outcome_of(status), timing
                )

    async def _parse(self, raw: str) -> tuple[dict[str, Any], bool] | None:
        """The create body and its ``generate``; None for an event needing no answer."""
        data = raw.encode()
        limit = await self.settings.body_limit()
        if len(data) > limit:
            raise too_large(limit, "message")
        message = parse_json(data, "The message is not valid JSON.")
        if isinstance(message, dict) and message.get("type") in IGNORED_EVENTS:
            return None
        return create_body(message)

    async def _warm_up(self, body: dict[str, Any], request_id: str) -> None:
        """generate:false: checked like any request, answered at once, its input kept."""
        items = body.get("input")
        if items in (None, [], ""):
            items = []
        elif isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        elif not isinstance(items, list):
            raise invalid_request("'input' must be a string or a list of items.", "input")
        # The input may be empty here; everything else is checked as for a turn.
        create = validate_request({**body, "input": items or "."})
        responses_tools(body)
        previous = create.previous_response_id
        if previous is not None and not self.state.knows(previous):
            await self._check_stored(previous, auth_metadata(self.authorization, request_id))
        warmup = self.state.warmup(previous) if previous is not None else None
        if warmup is not None:  # a warm-up of a warm-up: one input after the other
            items = [*warmup.input, *items]
            previous = warmup.previous_response_id
        self.req.context.model = create.model
        state = ResponseState(echo=Echo.of_request(create))
        started = events_pb2.TurnStarted(
            turn_id=f"warmup_{uuid.uuid4().hex}",
            model=create.model or "",
            created_at=int(time.time()),
        )
        events = state.start(started, create.model or "")
        state.usage = events_pb2.Usage()  # it ran nothing: a completed response says so
        events += state.finish("completed")
        self.state.remember(state.id, Warmup(items, previous))
        for event in events:
            await self._send(event)

    async def _stream(self, body: dict[str, Any], request_id: str) -> None:
        asked = body.get("previous_response_id")
        warmup = self.state.warmup(asked) if isinstance(asked, str) else None
        if warmup is not None:
            body = with_warmup(body, warmup)
        create, run = run_turn_request_of(
            body, request_id=request_id, builtin_header=self.req.get_header(BUILTIN_TOOLS_HEADER)
        )
        previous = create.previous_response_id
        metadata = auth_metadata(self.authorization, request_id, ENDPOINT)
        if previous is not None and not self.state.knows(previous):
            # Logged by the core as the GetTurn it is, under this request's id.
            await self._check_stored(previous, auth_metadata(self.authorization, request_id))
        echo = Echo.of_request(create)
        if warmup is not None:  # the client continued the warm-up, and sees that
            echo = dataclasses.replace(echo, previous_response_id=asked)
        state = ResponseState(echo=echo)
        try:
            turn = await start_turn(
                self.req,
                self.core.run_turn(run, metadata),
                stream=True,
                keepalive_seconds=self.config.keepalive_seconds,
            )
        except ApiError as err:
            raise _not_found_as_spec(for_responses(err, previous), previous) from None
        try:
            for event in state.start(turn.started, create.model or ""):
                await self._send(event)
            async for ev in read_turn(turn.reader):
                if ev is PING:  # the server pings the socket itself
                    continue
                if ev is GONE:
                    log.info("client went away; cancelling turn %s (%s)", state.turn_id, request_id)
                    raise _Closed
                for event in state.on_read(ev):
                    await self._send(event)
        finally:
            turn.close()
            self._run_cleanups()  # this turn's; the list would grow with each turn
        if state.status in _CONTINUABLE:
            self.state.remember(state.id)
        elif isinstance(asked, str):
            self.state.forget(asked)  # what the client referenced, warm-up or not

    async def _check_stored(self, previous: str, metadata: list[tuple[str, str]]) -> None:
        """An id this connection does not know continues only as a stored response."""
        turn_id = turn_id_of(previous, "previous_response_id")
        try:
            await self.core.get_turn(turn_id, metadata)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise previous_not_found(previous) from None
            raise for_responses(from_rpc_error(err, started=False), previous) from None


def _not_found_as_spec(err: ApiError, previous: str | None) -> ApiError:
    """The core's 404 for the previous turn is the spec's previous_response_not_found."""
    if previous is not None and err.status == 404 and err.param == "previous_response_id":
        return previous_not_found(previous)
    return err


def _connection_limit() -> ApiError:
    minutes = int(MAX_CONNECTION_SECONDS // 60)
    return ApiError(
        400,
        f"Responses websocket connection limit reached ({minutes} minutes). "
        "Create a new websocket connection to continue.",
        code="websocket_connection_limit_reached",
    )


async def _never() -> MutableMapping[str, Any]:
    """A receive that never returns: nothing reads HTTP events on a WebSocket."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


__all__ = [
    "MAX_CONNECTION_SECONDS",
    "MAX_QUEUED",
    "MAX_REMEMBERED",
    "MAX_WARMUPS",
    "ConnectionState",
    "ResponsesSocket",
    "Warmup",
    "create_body",
    "error_event",
    "with_warmup",
]

