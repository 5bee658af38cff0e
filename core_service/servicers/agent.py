"""claudecode.v1.AgentService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc
from core_service import request_context
from core_service.errors import NotFound
from core_service.interceptors import current_caller
from core_service.session_manager import SessionManager
from core_service.store import SessionStore


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, sessions: SessionManager, store: SessionStore) -> None:
        self._sessions = sessions
        self._store = store

    async def RunTurn(
        self, request: pb.RunTurnRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunTurnResponse]:
        sent_headers = False
        async for event in self._sessions.run_turn(current_caller(), request):
            if not sent_headers:
                # Rate-limit state is known once the turn was admitted.
                record = request_context.current()
                if record is not None and record.headers:
                    await context.send_initial_metadata(tuple(record.headers.items()))
                sent_headers = True
            yield event

    async def GetTurn(
        self, request: pb.GetTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTurnResponse:
        row = await asyncio.to_thread(
            self._store.get_turn, current_caller().key_id, request.turn_id
        )
        if row is None:
            raise NotFound(
                f"No response '{request.turn_id}'.", reason="turn_not_found", param="turn_id"
            )
        return pb.GetTurnResponse(turn=row.turn)

    async def CancelTurn(
        self, request: pb.CancelTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTurnResponse:
        turn = await self._sessions.cancel_turn(current_caller(), request.turn_id)
        return pb.CancelTurnResponse(turn=turn)

    async def DeleteTurn(
        self, request: pb.DeleteTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTurnResponse:
        if not await asyncio.to_thread(
            self._store.delete_turn, current_caller().key_id, request.turn_id
        ):
            raise NotFound(
                f"No response '{request.turn_id}'.", reason="turn_not_found", param="turn_id"
            )
        return pb.DeleteTurnResponse(turn_id=request.turn_id)
