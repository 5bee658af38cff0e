"""Who may say what in the request log (issue 10 items 10, 12, 13): only the
facade names endpoints, client addresses and refused requests; wrong API keys
from one address are slowed down, valid keys never; a turn the client got an
error for is logged with that error, however quickly the client hung up."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ccapi_client.service_identity import facade_credential
from claudecode.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
)
from tests.core.helpers import request
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core

LIST_MODELS = "/claudecode.v1.ModelService/ListModels"
RUN_TURN = "/claudecode.v1.AgentService/RunTurn"


def _logs(core: CoreProcess, endpoint: str) -> list[admin_pb2.RequestLog]:
    with core.channel() as channel:
        reply = admin_pb2_grpc.AdminServiceStub(channel).ListRequestLogs(
            admin_pb2.ListRequestLogsRequest(endpoint=endpoint, page_size=500),
            metadata=core.admin_metadata(),
        )
        return list(reply.logs)


def _row(core: CoreProcess, endpoint: str, request_id: str) -> admin_pb2.RequestLog | None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = next((r for r in _logs(core, endpoint) if r.request_id == request_id), None)
        if row is not None:
            return row
        time.sleep(0.2)
    return None


def _facade_md(core: CoreProcess) -> tuple[tuple[str, str], ...]:
    return (("x-ccapi-facade-token", facade_credential(core.env["CCAPI_ADMIN_TOKEN"])),)


def _record(core: CoreProcess, endpoint: str, md: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    with core.channel() as channel:
        stub = runtime_pb2_grpc.RuntimeServiceStub(channel)
        try:
            stub.RecordRejectedRequest(
                runtime_pb2.RecordRejectedRequestRequest(endpoint=endpoint, status=400),
                metadata=core.metadata() + md,
                timeout=10,
            )
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
    return grpc.StatusCode.OK


def test_a_valid_key_alone_cannot_record_rejected_requests(core: CoreProcess) -> None:
    endpoint = f"/v1/forged-{secrets.token_hex(4)}"
    assert _record(core, endpoint, ()) == grpc.StatusCode.PERMISSION_DENIED
    wrong = (("x-ccapi-facade-token", "0" * 64),)
    assert _record(core, endpoint, wrong) == grpc.StatusCode.PERMISSION_DENIED
    time.sleep(1)
    assert _logs(core, endpoint) == []


def test_a_direct_grpc_caller_cannot_name_the_logged_endpoint(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    forged = f"/v1/forged-{secrets.token_hex(4)}"
    model_double.script(Reply.text("hello"))
    turn_id = "req-" + secrets.token_hex(6)
    forged_md = (("x-ccapi-endpoint", forged), ("x-request-id", turn_id))
    with core.channel() as channel:
        events = list(
            agent_pb2_grpc.AgentServiceStub(channel).RunTurn(
                request(
                    "name my endpoint",
                    origin=agent_pb2.RequestOrigin(endpoint=forged, client_stream=False),
                ),
                metadata=core.metadata() + forged_md,
                timeout=60,
            )
        )
        assert events[-1].WhichOneof("event") == "completed"
        models_id = "req-" + secrets.token_hex(6)
        models_pb2_grpc.ModelServiceStub(channel).ListModels(
            models_pb2.ListModelsRequest(),
            metadata=(*core.metadata(), ("x-ccapi-endpoint", forged), ("x-request-id", models_id)),
            timeout=10,
        )
    turn_row = _row(core, f"grpc:{RUN_TURN}", turn_id)
    assert turn_row is not None and turn_row.stream, "a direct turn is a stream"
    assert _row(core, f"grpc:{LIST_MODELS}", models_id) is not None
    assert _logs(core, forged) == []


def test_a_turn_the_client_left_right_after_its_error_is_logged_with_that_error(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    """The facade hangs up as soon as it reads TurnFailed; the log must say
    what it sent the client (503), not that the client cancelled (499)."""
    model_double.set_default(Reply.error(529, "overloaded_error", "Overloaded"))
    ids = []
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        for _ in range(3):
            rid = "req-" + secrets.token_hex(6)
            call = stub.RunTurn(
                request("overloaded"),
                metadata=(*core.metadata(), ("x-request-id", rid)),
                timeout=60,
            )
            for event in call:
                if event.WhichOneof("event") == "failed":
                    call.cancel()
                    break
            ids.append(rid)
    for rid in ids:
        row = _row(core, f"grpc:{RUN_TURN}", rid)
        assert row is not None
        assert (row.status, row.outcome) == (503, "error"), row


@pytest.fixture(scope="module")
def own_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    # Its own core: floods and address locks must not reach other tests.
    process = start_core(model_double.url)
    yield process
    process.cleanup()


def test_the_facade_records_rejections_at_a_bounded_rate(own_core: CoreProcess) -> None:
    endpoint = f"/v1/refused-{secrets.token_hex(4)}"
    codes = [_record(own_core, endpoint, _facade_md(own_core)) for _ in range(130)]
    assert codes[0] == grpc.StatusCode.OK
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    recorded = codes.count(grpc.StatusCode.OK)
    assert recorded < 120
    deadline = time.monotonic() + 20
    while len(_logs(own_core, endpoint)) < recorded and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_logs(own_core, endpoint)) == recorded


def _list_models(core: CoreProcess, md: tuple[tuple[str, str], ...]) -> grpc.RpcError | None:
    with core.channel() as channel:
        try:
            models_pb2_grpc.ModelServiceStub(channel).ListModels(
                models_pb2.ListModelsRequest(), metadata=md, timeout=10
            )
        except grpc.RpcError as error:
            return error
    return None


def _wrong_key() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer sk-cc-{secrets.token_hex(16)}"),)


def test_wrong_keys_from_one_address_are_slowed_but_valid_keys_never(
    own_core: CoreProcess,
) -> None:
    codes = [_list_models(own_core, _wrong_key()) for _ in range(20)]
    assert all(e is not None and e.code() == grpc.StatusCode.UNAUTHENTICATED for e in codes)
    # A client address named by anyone but the facade is not believed.
    spoofed = (("x-ccapi-client-address", "198.51.100.200"),)
    refused = _list_models(own_core, _wrong_key() + spoofed)
    assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details)
    assert retry.retry_delay.seconds >= 1
    # The owner of a valid key at the same address is not locked out.
    assert _list_models(own_core, own_core.metadata()) is None
    # Another client the facade speaks for is its own address.
    other = (*_facade_md(own_core), ("x-ccapi-client-address", "198.51.100.201"))
    fresh = _list_models(own_core, _wrong_key() + other)
    assert fresh is not None and fresh.code() == grpc.StatusCode.UNAUTHENTICATED
    # Refusals are logged with the status the client saw.
    deadline = time.monotonic() + 20
    statuses: set[int] = set()
    while not {401, 429} <= statuses and time.monotonic() < deadline:
        time.sleep(0.2)
        statuses = {r.status for r in _logs(own_core, f"grpc:{LIST_MODELS}")}
    assert {401, 429} <= statuses
