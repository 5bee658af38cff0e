"""A database written by the release before migration 0011 (turns kept as
serialized claudecode.v1.Turn) under a real core: once the core upgraded it,
its stored responses come back exactly as that release returned them, over
gRPC and through the facade's GET /v1/responses/{id} and input_items."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from claudecode.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc
from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.keys import KeyStore
from http_facade.responses.protocol import PREFIX
from http_facade.responses.stored import from_turn, input_items, page
from tests import old_release
from tests.facade.conftest import make_config, serve_app
from tests.model_double import ModelDouble
from tests.stack import CoreProcess, make_data_dir, start_core

SESSION = "sess_before_0011"


@dataclass
class Upgraded:
    core: CoreProcess
    secret: str
    written: list[agent_pb2.Turn]


@pytest.fixture(scope="module")
def upgraded(model_double: ModelDouble) -> Iterator[Upgraded]:
    data_dir = make_data_dir()
    url = f"sqlite:///{data_dir / 'ccapi.db'}"
    upgrade(url, "0010")
    engine = make_engine(url)
    try:
        key, secret = KeyStore(make_sessionmaker(engine)).create("before 0011")
    finally:
        engine.dispose()
    written = old_release.write(url, key.id, SESSION)
    # The core upgrades the database as it starts.
    core = start_core(model_double.url, data_dir)
    # The admin view lists the session's workspace files too.
    (data_dir / "workspaces" / "ws-old").mkdir(parents=True, exist_ok=True)
    yield Upgraded(core, secret, written)
    core.cleanup()


def test_get_turn_returns_each_stored_turn_as_it_was(upgraded: Upgraded) -> None:
    *kept, deleted = upgraded.written
    with upgraded.core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        md = upgraded.core.metadata(upgraded.secret)
        for turn in kept:
            got = stub.GetTurn(agent_pb2.GetTurnRequest(turn_id=turn.id), metadata=md).turn
            assert got == turn, turn.id
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetTurn(agent_pb2.GetTurnRequest(turn_id=deleted.id), metadata=md)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # The admin view of the session still shows every turn, the deleted one too.
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        detail = admin.GetSessionDetail(
            admin_pb2.GetSessionDetailRequest(session_id=SESSION),
            metadata=upgraded.core.admin_metadata(),
        )
        assert list(detail.turns) == upgraded.written


async def test_stored_responses_and_input_items_read_as_before(upgraded: Upgraded) -> None:
    served = await serve_app(make_config(upgraded.core.addr))
    headers = {"Authorization": f"Bearer {upgraded.secret}"}
    try:
        async with served.client(headers=headers) as http:
            for turn in upgraded.written[:-1]:
                got = await http.get(f"/v1/responses/{PREFIX}{turn.id}")
                assert got.status_code == 200, got.text
                assert got.json() == from_turn(turn), turn.id
                items = await http.get(
                    f"/v1/responses/{PREFIX}{turn.id}/input_items", params={"order": "asc"}
                )
                assert items.status_code == 200, items.text
                expected = page(input_items(turn), limit=20, order="asc", after=None)
                assert items.json() == expected, turn.id
    finally:
        await served.stop()
