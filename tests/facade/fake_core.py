"""An in-process stand-in for the core: a real grpc.aio server with scripted turns.

Only for the facade's fast tests; the live tests use the real core.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ccapi_client import rich_status
from claudecode.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    events_pb2,
    models_pb2,
    models_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
)

GOOD_KEY = "sk-fake-good"
Event = agent_pb2.RunTurnResponse
Script = Callable[[agent_pb2.RunTurnRequest, grpc.aio.ServicerContext], AsyncIterator[Event]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rich_metadata(
    code: grpc.StatusCode, message: str, reason: str = "", param: str = "", retry: int = 0
) -> tuple[tuple[str, bytes], ...]:
    return rich_status.trailing_metadata(code, message, reason, param, retry)


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    param: str = "",
    retry: int = 0,
) -> None:
    await context.abort(
        code, message, trailing_metadata=rich_metadata(code, message, reason, param, retry)
    )


def started(turn_id: str = "t1", session_id: str = "s1", model: str = "claude-sonnet-4-5") -> Event:
    return Event(
        started=events_pb2.TurnStarted(
            session_id=session_id, turn_id=turn_id, model=model, created_at=1_700_000_000
        )
    )


def text(t: str) -> Event:
    return Event(text_delta=events_pb2.TextDelta(text=t))


def thinking(t: str) -> Event:
    return Event(reasoning_delta=events_pb2.ReasoningDelta(text=t))


def tool_use(tid: str, name: str, summary: str) -> Event:
    return Event(tool_use=events_pb2.ToolUse(id=tid, name=name, summary=summary, input_json="{}"))


def tool_result(tid: str, is_error: bool = False, excerpt: str = "") -> Event:
    return Event(
        tool_result=events_pb2.ToolResult(
            tool_use_id=tid, is_error=is_error, output_excerpt=excerpt
        )
    )


USAGE = events_pb2.Usage(
    input_tokens=10,
    output_tokens=7,
    cache_read_input_tokens=5,
    cache_creation_input_tokens=3,
    cost_usd=0.0123,
    reasoning_tokens=2,
)


def completed(
    full_text: str,
    finish: Any = events_pb2.FINISH_REASON_STOP,
    reasoning: str = "",
    files: Sequence[events_pb2.FileChange] = (),
) -> Event:
    return Event(
        completed=events_pb2.TurnCompleted(
            finish_reason=finish,
            text=full_text,
            reasoning=reasoning,
            usage=USAGE,
            num_turns=2,
            duration_ms=12,
            files=list(files),
            session_id="s1",
        )
    )


def failed(code: grpc.StatusCode, message: str, reason: str, retry: int = 0) -> Event:
    return Event(
        failed=events_pb2.TurnFailed(
            code=code.value[0], message=message, reason=reason, retry_after_seconds=retry
        )
    )


def last_user_text(req: agent_pb2.RunTurnRequest) -> str:
    for msg in reversed(req.messages):
        if msg.role == 1:
            return "".join(p.text for p in msg.content if p.WhichOneof("part") == "text")
    return ""


async def echo(req: agent_pb2.RunTurnRequest, ctx: Any) -> AsyncIterator[Event]:
    """Echoes the last user text, word by word."""
    said = last_user_text(req)
    yield started()
    for i, word in enumerate(said.split(" ")):
        yield text(word if i == 0 else " " + word)
    yield Event(usage=USAGE)
    yield completed(said)


@dataclass
class FakeCore:
    """Scripts by model name: ``fake.scripts["m"] = async_gen_fn``."""

    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[tuple[agent_pb2.RunTurnRequest, dict[str, str]]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    health: health.aio.HealthServicer | None = None
    port: int = 0
    server: grpc.aio.Server | None = None
    on_request: Callable[[], Awaitable[None]] | None = None
    # Stored turns (GetTurn/CancelTurn/DeleteTurn) and sessions with their files.
    turns: dict[str, agent_pb2.Turn] = field(default_factory=dict)
    sessions: dict[str, sessions_pb2.Session] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    file_requests: list[str] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = grpc.aio.server()
        agent = _Agent(self)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(agent, self.server)
        models_pb2_grpc.add_ModelServiceServicer_to_server(_Models(), self.server)
        sessions_pb2_grpc.add_SessionServiceServicer_to_server(_Sessions(self), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)

    async def set_serving(self, serving: bool) -> None:
        assert self.health is not None
        status = health_pb2.HealthCheckResponse
        await self.health.set("", status.SERVING if serving else status.NOT_SERVING)


def _auth(ctx: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in ctx.invocation_metadata() or () if isinstance(v, str)}


class _Agent(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, fake: FakeCore) -> None:
        self.fake = fake

    async def RunTurn(
        self, request: agent_pb2.RunTurnRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Event]:
        self.fake.requests.append((request, _auth(context)))
        await _check_key(context)
        script = self.fake.scripts.get(request.model)
        if script is None:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"The model '{request.model}' does not exist.",
                "model_not_found",
                "model",
            )
            return
        try:
            async for ev in script(request, context):
                yield ev
        except asyncio.CancelledError:
            self.fake.cancelled.append(request.model)
            raise
        self.fake.finished.append(request.model)

    async def GetTurn(
        self, request: agent_pb2.GetTurnRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.GetTurnResponse:
        return agent_pb2.GetTurnResponse(turn=await self._turn(request.turn_id, context))

    async def CancelTurn(
        self, request: agent_pb2.CancelTurnRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CancelTurnResponse:
        turn = await self._turn(request.turn_id, context)
        if turn.status == agent_pb2.TURN_STATUS_IN_PROGRESS:
            turn.status = agent_pb2.TURN_STATUS_CANCELLED
            turn.finish_reason = events_pb2.FINISH_REASON_CANCELLED
        return agent_pb2.CancelTurnResponse(turn=turn)

    async def DeleteTurn(
        self, request: agent_pb2.DeleteTurnRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeleteTurnResponse:
        await self._turn(request.turn_id, context)
        del self.fake.turns[request.turn_id]
        return agent_pb2.DeleteTurnResponse(turn_id=request.turn_id)

    async def CompactTurn(
        self, request: agent_pb2.CompactTurnRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CompactTurnResponse:
        await abort(
            context, grpc.StatusCode.UNIMPLEMENTED, "Not in the fake core.", "unimplemented"
        )
        raise AssertionError("unreachable")

    async def StartBackgroundTurn(
        self, request: agent_pb2.StartBackgroundTurnRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.StartBackgroundTurnResponse:
        # Background mode is tested against the real core (test_responses_background.py).
        await abort(
            context, grpc.StatusCode.UNIMPLEMENTED, "Not in the fake core.", "unimplemented"
        )
        raise AssertionError("unreachable")

    async def StreamTurnEvents(
        self, request: agent_pb2.StreamTurnEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.StreamTurnEventsResponse]:
        await abort(
            context, grpc.StatusCode.UNIMPLEMENTED, "Not in the fake core.", "unimplemented"
        )
        yield agent_pb2.StreamTurnEventsResponse()

    async def _turn(self, turn_id: str, context: grpc.aio.ServicerContext) -> agent_pb2.Turn:
        await _check_key(context)
        turn = self.fake.turns.get(turn_id)
        if turn is None:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"No response '{turn_id}'.",
                "turn_not_found",
                "turn_id",
            )
            raise AssertionError("unreachable")
        return turn


async def _check_key(context: grpc.aio.ServicerContext) -> None:
    if _auth(context).get("authorization") != f"Bearer {GOOD_KEY}":
        await abort(
            context,
            grpc.StatusCode.UNAUTHENTICATED,
            "Incorrect API key provided.",
            "invalid_api_key",
        )


class _Sessions(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, fake: FakeCore) -> None:
        self.fake = fake

    async def _own(
        self, session_id: str, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.Session:
        await _check_key(context)
        session = self.fake.sessions.get(session_id)
        if session is None:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"No session '{session_id}'.",
                "session_not_found",
                "session_id",
            )
            raise AssertionError("unreachable")
        return session

    async def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.ListSessionsResponse:
        await _check_key(context)
        size = request.page_size or 50
        offset = int(request.page_token or "0")
        rows = list(self.fake.sessions.values())
        token = str(offset + size) if len(rows) > offset + size else ""
        return sessions_pb2.ListSessionsResponse(
            sessions=rows[offset : offset + size], next_page_token=token
        )

    async def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.GetSessionResponse:
        return sessions_pb2.GetSessionResponse(session=await self._own(request.session_id, context))

    async def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.DeleteSessionResponse:
        await self._own(request.session_id, context)
        del self.fake.sessions[request.session_id]
        return sessions_pb2.DeleteSessionResponse(session_id=request.session_id)

    async def ListSessionFiles(
        self, request: sessions_pb2.ListSessionFilesRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.ListSessionFilesResponse:
        await self._own(request.session_id, context)
        return sessions_pb2.ListSessionFilesResponse(
            files=[
                sessions_pb2.WorkspaceFile(
                    path=path, size_bytes=len(data), modified_at=1_700_000_000
                )
                for (sid, path), data in sorted(self.fake.files.items())
                if sid == request.session_id
            ]
        )

    async def GetSessionFile(
        self, request: sessions_pb2.GetSessionFileRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.GetSessionFileResponse:
        await self._own(request.session_id, context)
        self.fake.file_requests.append(request.path)
        if request.path.startswith("/") or ".." in request.path.split("/"):
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "Path outside the workspace.",
                "path_outside_workspace",
                "path",
            )
        data = self.fake.files.get((request.session_id, request.path))
        if data is None:
            await abort(
                context, grpc.StatusCode.NOT_FOUND, "No such file.", "file_not_found", "path"
            )
            raise AssertionError("unreachable")
        media = "text/x-python" if request.path.endswith(".py") else "application/octet-stream"
        return sessions_pb2.GetSessionFileResponse(
            file=sessions_pb2.WorkspaceFile(
                path=request.path, size_bytes=len(data), modified_at=1_700_000_000
            ),
            content=data,
            media_type=media,
        )


MODELS = [
    models_pb2.Model(
        id="claude-sonnet-4-5",
        display_name="Claude Sonnet 4.5",
        aliases=["sonnet", "gpt-4o"],
        created=1_759_000_000,
        owned_by="anthropic",
    ),
    models_pb2.Model(
        id="claude-opus-4-1",
        display_name="Claude Opus 4.1",
        aliases=["opus"],
        created=1_754_000_000,
        owned_by="anthropic",
    ),
]


class _Models(models_pb2_grpc.ModelServiceServicer):
    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        await _check_key(context)
        return models_pb2.ListModelsResponse(models=MODELS)

    async def GetModel(
        self, request: models_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.GetModelResponse:
        await _check_key(context)
        for m in MODELS:
            if request.name == m.id or request.name in m.aliases:
                return models_pb2.GetModelResponse(model=m)
        await abort(context, grpc.StatusCode.NOT_FOUND, "no such model", "model_not_found")
        raise AssertionError("unreachable")
