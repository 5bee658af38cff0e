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
from core_service.servicers import convert
from core_service.store import SessionStore
from core_service.turns.background import BackgroundTurns
from core_service.turns.compaction import Compactions
from core_service.turns.service import TurnService


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        turns: TurnService,
        store: SessionStore,
        compactions: Compactions,
        background: BackgroundTurns,
    ) -> None:
        self._turns = turns
        self._store = store
        self._compactions = compactions
        self._background = background

    async def RunTurn(
        self, request: pb.RunTurnRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunTurnResponse]:
        call = request_context.current()
        if request.compaction:
            await asyncio.to_thread(self._compactions.restore, current_caller(), request)
        run = self._turns.run_turn(call, request)
        sent_headers = False
        try:
            async for event in run:
                if not sent_headers:
                    # Rate-limit state is known once the turn was admitted.
                    if run.headers:
                        await context.send_initial_metadata(tuple(run.headers.items()))
                    sent_headers = True
                yield event
        finally:
            # However the call ends, the turn ends first and says what it did.
            await run.aclose()
            call.reply.report(run.outcome())

    async def GetTurn(
        self, request: pb.GetTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTurnResponse:
        key_id = current_caller().key_id
        row = await asyncio.to_thread(self._store.get_turn, key_id, request.turn_id)
        # A background turn still queued has no stored turn yet.
        turn = (
            row.turn
            if row is not None
            else await self._background.snapshot(key_id, request.turn_id)
        )
        if turn is None:
            raise NotFound(
                f"No response '{request.turn_id}'.", reason="turn_not_found", param="turn_id"
            )
        return pb.GetTurnResponse(turn=convert.turn_to_pb(turn))

    async def CancelTurn(
        self, request: pb.CancelTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTurnResponse:
        caller = current_caller()
        turn = await self._background.cancel(caller.key_id, request.turn_id)
        if turn is None:  # not a background turn
            turn = await self._turns.cancel_turn(caller, request.turn_id)
        return pb.CancelTurnResponse(turn=convert.turn_to_pb(turn))

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

    async def StartBackgroundTurn(
        self, request: pb.StartBackgroundTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartBackgroundTurnResponse:
        turn, headers = await self._background.start(request_context.current(), request.turn)
        reply = pb.StartBackgroundTurnResponse(turn=convert.turn_to_pb(turn))
        if headers:
            await context.send_initial_metadata(tuple(headers.items()))
        return reply

    async def StreamTurnEvents(
        self, request: pb.StreamTurnEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamTurnEventsResponse]:
        events = self._background.events(
            current_caller().key_id, request.turn_id, request.start_index
        )
        async for event in events:
            yield event

    async def CompactTurn(
        self, request: pb.CompactTurnRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompactTurnResponse:
        turn, token = await self._compactions.compact(request_context.current(), request)
        return pb.CompactTurnResponse(turn=convert.turn_to_pb(turn), compaction=token)
