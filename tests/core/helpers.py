"""Small helpers for driving the core over gRPC in tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import grpc

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc
from claudecode.v1 import content_pb2 as cpb
from tests.stack import CoreProcess


def user(text: str) -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text)])


def request(text: str, **fields: Any) -> pb.RunTurnRequest:
    return pb.RunTurnRequest(
        model=str(fields.pop("model", "sonnet")), messages=[user(text)], **fields
    )


@dataclass
class TurnLog:
    events: list[pb.RunTurnResponse] = field(default_factory=list)
    error: grpc.RpcError | None = None

    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]

    def of(self, kind: str) -> list[pb.RunTurnResponse]:
        return [e for e in self.events if e.WhichOneof("event") == kind]

    @property
    def started(self) -> pb.RunTurnResponse:
        return self.of("started")[0]

    def tool_inputs(self) -> list[dict[str, object]]:
        return [json.loads(e.tool_use.input_json) for e in self.of("tool_use")]


def run_turn(
    core: CoreProcess, req: pb.RunTurnRequest, key: str | None = None, timeout: float = 60
) -> TurnLog:
    log = TurnLog()
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        try:
            for event in stub.RunTurn(req, metadata=core.metadata(key), timeout=timeout):
                log.events.append(event)
        except grpc.RpcError as error:
            log.error = error
    return log
