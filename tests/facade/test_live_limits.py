"""Live: key limits, request logs and live configuration seen through HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import field_mask_pb2

from claudecode.v1 import admin_pb2, admin_pb2_grpc
from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, start_core
from tests.facade.test_responses_websocket import connect, error_of
from tests.stack import ccapi, within_one_rate_window


def _key(core: CoreProcess, *options: str) -> str:
    return (
        ccapi(core.env, "keys", "create", "--name", "http-limits", *options)
        .strip()
        .splitlines()[-1]
    )


def _chat(facade: Facade, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        facade.base_url + "/v1/chat/completions",
        json=payload,
        timeout=90,
        headers={"Authorization": f"Bearer {key}"},
    )


def test_rate_limit_headers_and_429(facade: Facade, core: CoreProcess) -> None:
    within_one_rate_window()
    key = _key(core, "--rpm", "2")
    first = _chat(facade, key)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert _chat(facade, key, stream=True).status_code == 200
    third = _chat(facade, key)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(third.headers["retry-after"]) >= 1
    assert third.headers["x-ratelimit-remaining-requests"] == "0"


def test_budget_exhaustion_is_insufficient_quota(facade: Facade, core: CoreProcess) -> None:
    key = _key(core, "--budget-usd", "0.000001")
    assert _chat(facade, key).status_code == 200
    second = _chat(facade, key)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "insufficient_quota"


def test_model_scope_over_http(facade: Facade, core: CoreProcess) -> None:
    key = _key(core, "--models", "haiku")
    denied = _chat(facade, key)
    assert denied.status_code == 403
    assert denied.json()["error"]["param"] == "model"
    assert _chat(facade, key, model="haiku").status_code == 200


def test_concurrency_limit_over_several_workers(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    key = _key(core, "--max-concurrent", "5")
    model_double.set_default(Reply.hang(8, "slow"))
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: _chat(facade, key).status_code, range(20)))
    assert statuses.count(200) == 5
    assert statuses.count(429) == 15


def test_requests_are_logged_with_their_http_endpoint(facade: Facade, core: CoreProcess) -> None:
    marker = f"log marker {time.time()}"
    response = _chat(facade, core.api_key, messages=[{"role": "user", "content": marker}])
    assert response.status_code == 200
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        row = None
        deadline = time.monotonic() + 30
        while row is None and time.monotonic() < deadline:
            logs = admin.ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(endpoint="/v1/chat/completions", page_size=500),
                metadata=core.admin_metadata(),
            ).logs
            row = next((r for r in logs if marker in r.request_body), None)
            time.sleep(0.2)
    assert row is not None
    assert row.status == 200 and row.outcome == "ok"
    assert row.request_id == response.headers["x-request-id"]
    assert core.api_key not in row.request_body


@pytest.fixture
def own_stack(
    model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CoreProcess, Facade]]:
    # Its own core and facade: the configuration change must not leak into other tests.
    core = start_core(model_double.url)
    facade = start_facade(
        core.addr,
        tmp_path_factory.mktemp("own") / "gunicorn.log",
        workers=2,
        admin_token=core.env["CCAPI_ADMIN_TOKEN"],
    )
    yield core, facade
    facade.stop()
    core.cleanup()


def test_live_config_reaches_a_running_facade(own_stack: tuple[CoreProcess, Facade]) -> None:
    core, facade = own_stack
    origin = "https://chat.example"
    headers = {"Origin": origin, "Authorization": f"Bearer {core.api_key}"}
    before = httpx.get(facade.base_url + "/v1/models", headers=headers)
    assert "access-control-allow-origin" not in before.headers
    big = {"model": "sonnet", "messages": [{"role": "user", "content": "x" * 5000}]}
    # As big over the Responses WebSocket, and invalid besides, so that nothing runs.
    message = json.dumps(
        {"type": "response.create", "model": "sonnet", "input": "x" * 5000, "temperature": 9}
    )
    # A connection opened before the change: the limit holds for each message.
    with connect(facade, core.api_key) as socket:
        socket.send_raw(message)
        assert error_of([json.loads(socket.recv_bytes())])["error"]["param"] == "temperature"
        with core.channel() as channel:
            admin_pb2_grpc.AdminServiceStub(channel).UpdateConfig(
                admin_pb2.UpdateConfigRequest(
                    config=admin_pb2.LiveConfig(cors_origins=[origin], max_body_bytes=2048),
                    update_mask=field_mask_pb2.FieldMask(paths=["cors_origins", "max_body_bytes"]),
                ),
                metadata=core.admin_metadata(),
            )
        deadline = time.monotonic() + 15
        allowed = too_big = socket_too_big = False
        while time.monotonic() < deadline and not (allowed and too_big and socket_too_big):
            # Two workers: each must pick the change up on its own.
            allowed = all(
                httpx.get(facade.base_url + "/v1/models", headers=headers).headers.get(
                    "access-control-allow-origin"
                )
                == origin
                for _ in range(4)
            )
            too_big = all(
                httpx.post(
                    facade.base_url + "/v1/chat/completions", json=big, headers=headers
                ).status_code
                == 413
                for _ in range(4)
            )
            socket.send_raw(message)
            refused = error_of([json.loads(socket.recv_bytes())])
            socket_too_big = refused["status"] == 413
            time.sleep(0.5)
    assert allowed and too_big and socket_too_big
    assert refused["error"]["code"] == "request_too_large"
    assert "2048 bytes" in refused["error"]["message"]


def test_tokens_per_minute_over_http(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    within_one_rate_window()
    key = _key(core, "--tpm", "50")
    model_double.set_default(Reply.text("x", usage={"input_tokens": 60, "output_tokens": 5}))
    first = _chat(facade, key)
    assert first.status_code == 200 and first.headers["x-ratelimit-limit-tokens"] == "50"
    second = _chat(facade, key)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"


def test_expired_key_over_http(facade: Facade, core: CoreProcess) -> None:
    key = _key(core, "--expires-in-days", "0.00001")
    time.sleep(1.5)
    response = _chat(facade, key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_read_only_key_over_http(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    key = _key(core, "--tools", "Read,Grep,Glob")
    model_double.script(
        Reply.tool_use("Bash", {"command": "touch nope.txt", "description": "x"}),
        Reply.text("could not"),
    )
    response = _chat(facade, key)
    assert response.status_code == 200
    files = response.json()["claude_code"]["files"]
    assert files == []
    reasoning = response.json()["choices"][0]["message"]["reasoning_content"]
    assert "Bash" in reasoning


def test_requests_the_facade_refuses_are_logged_too(facade: Facade, core: CoreProcess) -> None:
    marker = f"unsupported-{time.time()}"
    refused = httpx.post(
        facade.base_url + "/v1/chat/completions",
        json={
            "model": "sonnet",
            "messages": [{"role": "user", "content": marker}],
            "tools": [{"type": "function", "function": {"name": "not valid!"}}],
        },
        headers={"Authorization": f"Bearer {core.api_key}"},
    )
    assert refused.status_code == 400
    broken = httpx.post(
        facade.base_url + "/v1/responses",
        content=b"{not json",
        headers={"Authorization": f"Bearer {core.api_key}"},
    )
    assert broken.status_code == 400
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        rows: dict[str, admin_pb2.RequestLog] = {}
        deadline = time.monotonic() + 30
        while len(rows) < 2 and time.monotonic() < deadline:
            logs = admin.ListRequestLogs(
                admin_pb2.ListRequestLogsRequest(status=400, page_size=200),
                metadata=core.admin_metadata(),
            ).logs
            for row in logs:
                if row.request_id in (
                    refused.headers["x-request-id"],
                    broken.headers["x-request-id"],
                ):
                    rows[row.request_id] = row
            time.sleep(0.2)
    first = rows[refused.headers["x-request-id"]]
    assert first.endpoint == "/v1/chat/completions" and first.outcome == "error"
    assert first.key_id and first.model == "sonnet" and marker in first.request_body
    assert "tools" in first.error
    second = rows[broken.headers["x-request-id"]]
    assert second.endpoint == "/v1/responses" and second.status == 400
