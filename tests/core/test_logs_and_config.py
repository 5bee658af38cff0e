"""Request logs for every outcome, and live configuration without restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from claudecode.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    runtime_pb2,
    runtime_pb2_grpc,
)
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core


def _logs(core: CoreProcess, **filters: object) -> list[admin_pb2.RequestLog]:
    with core.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        reply = stub.ListRequestLogs(
            admin_pb2.ListRequestLogsRequest(page_size=200, **filters),  # type: ignore[arg-type]
            metadata=core.admin_metadata(),
        )
        return list(reply.logs)


def _wait_for(
    find: Callable[[], admin_pb2.RequestLog | None], timeout: float = 30
) -> admin_pb2.RequestLog:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError("log row did not appear")


def test_a_streamed_turn_is_logged_with_its_numbers(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/x.txt", "content": "x"}),
        Reply.text("written", usage={"input_tokens": 33, "output_tokens": 4}),
    )
    log = run_turn(core, request("log me please"))
    turn_id = log.started.started.turn_id
    row = _wait_for(lambda: next((r for r in _logs(core) if r.turn_id == turn_id), None))
    assert row.outcome == "ok" and row.status == 200
    assert row.endpoint == "grpc:/claudecode.v1.AgentService/RunTurn"
    assert row.model == "claude-sonnet-5-5"
    assert row.session_id == log.started.started.session_id
    assert list(row.tools_used) == ["Write"] and row.files_changed == 1
    assert row.usage.input_tokens > 0 and row.time_to_first_token_ms > 0
    assert "log me please" in row.request_body and "written" in row.response_body
    assert core.api_key not in row.request_body


def test_failed_and_cancelled_turns_are_logged(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.error(529, "overloaded_error", "busy"))
    failed = run_turn(core, request("will fail"))
    assert failed.error is not None
    model_double.reset()
    model_double.script(Reply.hang(30))
    with core.channel() as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).RunTurn(
            request("will be cancelled"), metadata=core.metadata(), timeout=60
        )
        next(call)
        model_double.wait_for_requests(1, timeout=20)
        call.cancel()

    def rows() -> list[admin_pb2.RequestLog]:
        return _logs(core)

    error_row = _wait_for(lambda: next((r for r in rows() if "will fail" in r.request_body), None))
    assert error_row.outcome == "error" and error_row.status == 503 and error_row.error
    cancelled = _wait_for(
        lambda: next((r for r in rows() if "will be cancelled" in r.request_body), None)
    )
    assert cancelled.outcome == "cancelled"


def test_unknown_keys_are_logged_without_the_secret(core: CoreProcess) -> None:
    run_turn(core, request("who am i"), key="sk-cc-not-a-key-but-looks-like-one-0123456789")
    row = _wait_for(lambda: next((r for r in _logs(core, status=401)), None))
    assert row.key_id == "" and "sk-cc-not-a-key" not in str(row)


@pytest.fixture
def private_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    # Its own core: configuration changes must not leak into other tests.
    process = start_core(model_double.url)
    yield process
    process.cleanup()


def test_live_config_reaches_the_running_core(private_core: CoreProcess) -> None:
    core = private_core
    md = core.admin_metadata()
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        models = models_pb2_grpc.ModelServiceStub(channel)
        runtime = runtime_pb2_grpc.RuntimeServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            models.GetModel(models_pb2.GetModelRequest(name="gpt-4o"), metadata=core.metadata())
        before = admin.GetConfig(admin_pb2.GetConfigRequest(), metadata=md)
        bad = admin_pb2.LiveConfig(log_level="loud")
        with pytest.raises(grpc.RpcError) as caught:
            admin.UpdateConfig(
                admin_pb2.UpdateConfigRequest(
                    config=bad, update_mask=field_mask_pb2.FieldMask(paths=["log_level"])
                ),
                metadata=md,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        change = admin_pb2.LiveConfig(
            model_aliases={"gpt-4o": "claude-haiku-5-5"}, cors_origins=["https://chat.example"]
        )
        updated = admin.UpdateConfig(
            admin_pb2.UpdateConfigRequest(
                config=change,
                update_mask=field_mask_pb2.FieldMask(paths=["model_aliases", "cors_origins"]),
                expected_version=before.version,
            ),
            metadata=md,
        )
        assert updated.version == before.version + 1
        deadline = time.monotonic() + 30
        resolved = ""
        while time.monotonic() < deadline and not resolved:
            try:
                resolved = models.GetModel(
                    models_pb2.GetModelRequest(name="gpt-4o"), metadata=core.metadata()
                ).model.id
            except grpc.RpcError:
                time.sleep(0.3)
        assert resolved == "claude-haiku-5-5"
        runtime_config = runtime.GetRuntimeConfig(runtime_pb2.GetRuntimeConfigRequest())
        assert list(runtime_config.cors_origins) == ["https://chat.example"]
        history = admin.ListConfigHistory(admin_pb2.ListConfigHistoryRequest(), metadata=md)
        assert history.changes[0].updated_by == "service"
        assert set(history.changes[0].changed_fields) == {"model_aliases", "cors_origins"}


@pytest.mark.parametrize(
    ("change", "path", "param"),
    [
        (
            admin_pb2.LiveConfig(default_allowed_tools=["<b>Read</b>"]),
            "default_allowed_tools",
            "default_allowed_tools",
        ),
        (
            admin_pb2.LiveConfig(default_allowed_tools=["Read", "Rread"]),
            "default_allowed_tools",
            "default_allowed_tools",
        ),
        (
            admin_pb2.LiveConfig(cors_origins=["https://<script>.example"]),
            "cors_origins",
            "cors_origins",
        ),
        (
            admin_pb2.LiveConfig(cors_origins=["https://app.example/path"]),
            "cors_origins",
            "cors_origins",
        ),
        (admin_pb2.LiveConfig(cors_origins=["http://"]), "cors_origins", "cors_origins"),
        (
            admin_pb2.LiveConfig(model_aliases={"<i>gpt</i>": "claude-haiku-5-5"}),
            "model_aliases",
            "model_aliases",
        ),
        (
            admin_pb2.LiveConfig(model_aliases={"gpt 4o": "claude-haiku-5-5"}),
            "model_aliases",
            "model_aliases",
        ),
    ],
)
def test_live_config_refuses_settings_of_the_wrong_form(
    core: CoreProcess, change: admin_pb2.LiveConfig, path: str, param: str
) -> None:
    md = core.admin_metadata()
    with core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        before = admin.GetConfig(admin_pb2.GetConfigRequest(), metadata=md)
        with pytest.raises(grpc.RpcError) as caught:
            admin.UpdateConfig(
                admin_pb2.UpdateConfigRequest(
                    config=change, update_mask=field_mask_pb2.FieldMask(paths=[path])
                ),
                metadata=md,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert info.metadata["param"] == param
        after = admin.GetConfig(admin_pb2.GetConfigRequest(), metadata=md)
        assert after.version == before.version  # nothing was stored


def test_well_formed_origins_and_aliases_are_accepted(private_core: CoreProcess) -> None:
    md = private_core.admin_metadata()
    with private_core.channel() as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        updated = admin.UpdateConfig(
            admin_pb2.UpdateConfigRequest(
                config=admin_pb2.LiveConfig(
                    cors_origins=[
                        "*",
                        "http://localhost:3000",
                        "https://chat.example.com",
                        "http://[::1]:8080",
                    ],
                    model_aliases={"openai/gpt-4o-mini": "claude-haiku-5-5"},
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["cors_origins", "model_aliases"]),
            ),
            metadata=md,
        )
        assert list(updated.config.cors_origins)[1] == "http://localhost:3000"
        assert dict(updated.config.model_aliases) == {"openai/gpt-4o-mini": "claude-haiku-5-5"}


def test_default_tool_policy_applies_to_keys_without_their_own(
    private_core: CoreProcess, model_double: ModelDouble
) -> None:
    core = private_core
    with core.channel() as channel:
        admin_pb2_grpc.AdminServiceStub(channel).UpdateConfig(
            admin_pb2.UpdateConfigRequest(
                config=admin_pb2.LiveConfig(default_allowed_tools=["Read", "Grep", "Glob"]),
                update_mask=field_mask_pb2.FieldMask(paths=["default_allowed_tools"]),
            ),
            metadata=core.admin_metadata(),
        )
    time.sleep(3)  # the core polls its live configuration every 2 s
    model_double.script(
        Reply.tool_use("Bash", {"command": "touch nope.txt", "description": "x"}),
        Reply.text("could not"),
    )
    log = run_turn(core, request("try bash"))
    assert log.error is None, log.error
    assert log.of("tool_result")[0].tool_result.is_error
    assert "Bash" not in model_double.main_requests[0].tool_names


def test_the_event_watch_reports_a_long_request_when_it_ends(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    import threading

    events: list[admin_pb2.WatchEventsResponse] = []
    with core.channel() as channel:
        watch = admin_pb2_grpc.AdminServiceStub(channel).WatchEvents(
            admin_pb2.WatchEventsRequest(), metadata=core.admin_metadata(), timeout=60
        )

        def collect() -> None:
            try:
                for event in watch:
                    events.append(event)
            except grpc.RpcError:
                pass  # cancelled below

        reader = threading.Thread(target=collect)
        reader.start()
        time.sleep(2)  # the watcher has primed itself with what was already there
        # Longer than a few seconds: its row lands long after the request started.
        model_double.script(Reply.hang(7, "finally"))
        log = run_turn(core, request("a slow one"))
        turn_id = log.started.started.turn_id
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            e.request_finished.turn_id == turn_id for e in events
        ):
            time.sleep(0.2)
        watch.cancel()
        reader.join(5)
    finished = [e.request_finished for e in events if e.request_finished.turn_id == turn_id]
    assert len(finished) == 1 and finished[0].outcome == "ok"
