"""Background mode, live: the real core and Claude Code CLI behind gunicorn,
driven with the official openai SDK (and httpx for what it does not cover).

One core with a single running slot (so a second turn waits in the queue)
serves the module; its last test kills it with SIGKILL and starts it again on
the same database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from claudecode.v1 import agent_pb2, agent_pb2_grpc
from tests.facade import openresponses_check as check
from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, start_core
from tests.stack import REPO, ccapi, wait_serving

MODEL = "sonnet"
ANSWER = "Background answers arrive in several pieces, one after another."


@pytest.fixture(scope="module")
def stack(
    model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CoreProcess, Facade]]:
    core = start_core(model_double.url, CCAPI_MAX_RUNNING_TURNS="1", CCAPI_POOL_SIZE="0")
    facade = start_facade(
        core.addr,
        tmp_path_factory.mktemp("bg-facade") / "gunicorn.log",
        workers=2,
        admin_token=core.env["CCAPI_ADMIN_TOKEN"],
    )
    try:
        yield core, facade
    finally:
        facade.stop()
        core.stop()
        shutil.rmtree(core.data_dir, ignore_errors=True)


@pytest.fixture
def client(stack: tuple[CoreProcess, Facade]) -> Iterator[openai.OpenAI]:
    core, facade = stack
    sdk = openai.OpenAI(
        base_url=facade.base_url + "/v1", api_key=core.api_key, max_retries=0, timeout=60
    )
    yield sdk
    sdk.close()


def _http(stack: tuple[CoreProcess, Facade], key: str | None = None) -> httpx.Client:
    core, facade = stack
    return httpx.Client(
        base_url=facade.base_url + "/v1",
        headers={"Authorization": f"Bearer {key or core.api_key}"},
        timeout=60,
    )


def _poll(sdk: openai.OpenAI, response_id: str, until: set[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = sdk.responses.retrieve(response_id)
        if got.status in until or time.monotonic() > deadline:
            assert got.status in until, got
            return got
        time.sleep(0.1)


def _replay(http: httpx.Client, response_id: str, after: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"stream": "true"}
    if after is not None:
        params["starting_after"] = after
    r = http.get(f"/responses/{response_id}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return check.sse_events(r.text)


def _get(http: httpx.Client, response_id: str) -> dict[str, Any]:
    """GET as JSON, checked against the spec and the openai SDK."""
    r = http.get(f"/responses/{response_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    check.check_response(body)
    return body


def _log_rows(core: CoreProcess, turn_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(core.data_dir / "ccapi.db", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM request_logs WHERE turn_id = ?", (turn_id,)).fetchall()


def test_returns_at_once_and_is_polled_to_completion(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text(ANSWER, chunks=6, delay=0.05))
    with _http(stack) as http:
        r = http.post(
            "/responses", json={"model": MODEL, "input": "work on this", "background": True}
        )
        assert r.status_code == 200, r.text
        started = r.json()
        check.check_response(started)
        assert started["background"] is True
        assert started["status"] in ("queued", "in_progress")
        assert started["output"] == []

        _poll(client, started["id"], {"completed"})
        done = _get(http, started["id"])
    assert done["background"] is True
    assert done["output"][-1]["content"][0]["text"] == ANSWER

    # One request-log row, written when the turn ended, with what it used.
    core, _ = stack
    turn_id = started["id"].removeprefix("resp_")
    deadline = time.monotonic() + 10
    while not (rows := _log_rows(core, turn_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(rows) == 1
    assert rows[0]["endpoint"] == "/v1/responses" and rows[0]["status"] == 200
    assert rows[0]["output_tokens"] > 0


def test_a_resumed_stream_gets_exactly_the_later_events_and_a_disconnect_cancels_nothing(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(Reply.text(ANSWER, chunks=12, delay=0.2))
    seen: list[Any] = []
    stream = client.responses.create(model=MODEL, input="stream it", background=True, stream=True)
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the client goes away mid-answer
    response_id = seen[0].response.id
    assert seen[0].type == "response.created" and seen[0].response.background is True
    cursor = seen[-1].sequence_number

    # The turn ran on without anyone attached.
    done = _poll(client, response_id, {"completed"})
    assert done.output_text == ANSWER

    with _http(stack) as http:
        everything = _replay(http, response_id)
        resumed = _replay(http, response_id, after=cursor)
    final = check.check_stream(everything)
    assert final["status"] == "completed" and final["background"] is True
    # What the first stream saw is the start of every replay, numbered alike.
    assert [(e.type, e.sequence_number) for e in seen] == [
        (e["type"], e["sequence_number"]) for e in everything[: len(seen)]
    ]
    assert resumed == everything[cursor + 1 :]
    assert resumed[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in everything if e["type"] == "response.output_text.delta")
    assert text == ANSWER
    assert resumed[-1]["response"]["background"] is True

    # The SDK's own resume call gives the same events.
    again = client.responses.retrieve(response_id, stream=True, starting_after=cursor)
    assert [e.sequence_number for e in again] == [e["sequence_number"] for e in resumed]


def test_queued_behind_a_running_turn_and_cancelled(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.hang(120))
    first = client.responses.create(model=MODEL, input="a long job", background=True)
    model_double.wait_for_requests(1, timeout=60, main_only=True)
    # The core runs one turn at a time: the next one waits in the queue.
    second = client.responses.create(model=MODEL, input="another job", background=True)
    assert second.status == "queued"
    with _http(stack) as http:
        assert _get(http, second.id)["status"] == "queued"
        cancelled = http.post(f"/responses/{second.id}/cancel").json()
        check.check_response(cancelled)
        assert cancelled["status"] == "cancelled"
        assert _get(http, second.id)["status"] == "cancelled"

    running = client.responses.cancel(first.id)
    check.check_response(json.loads(running.to_json()))
    assert running.status == "cancelled"
    assert client.responses.retrieve(first.id).status == "cancelled"
    # Cancelling again changes nothing.
    assert client.responses.cancel(first.id).status == "cancelled"
    with _http(stack) as http:
        final = check.check_stream(_replay(http, first.id))
    assert final["status"] == "cancelled"


def test_the_keys_limits_apply(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    core, _ = stack
    out = ccapi(core.env, "keys", "create", "--name", "one-at-a-time", "--max-concurrent", "1")
    key = out.strip().splitlines()[-1]
    model_double.set_default(Reply.hang(120))
    with _http(stack, key) as http:
        body = {"model": MODEL, "input": "job", "background": True}
        first = http.post("/responses", json=body)
        assert first.status_code == 200, first.text
        check.check_response(first.json())
        refused = http.post("/responses", json=body)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        not_stored = http.post("/responses", json={**body, "store": False})
        assert not_stored.status_code == 400
        assert not_stored.json()["error"]["param"] == "background"
        cancelled = http.post(f"/responses/{first.json()['id']}/cancel")
        check.check_response(cancelled.json())
        assert cancelled.json()["status"] == "cancelled"


def test_another_core_replays_and_cancels_it(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    core, _ = stack
    # A replica on the same database; the facade knows only the first core.
    replica = start_core(model_double.url, CCAPI_DATABASE_URL=f"sqlite:///{core.data_dir}/ccapi.db")
    try:
        with replica.channel() as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            model_double.script(Reply.text(ANSWER, chunks=6, delay=0.2))
            model_double.set_default(Reply.hang(120))
            talking = client.responses.create(model=MODEL, input="talk", background=True)
            turn_id = talking.id.removeprefix("resp_")
            replayed = list(
                stub.StreamTurnEvents(
                    agent_pb2.StreamTurnEventsRequest(turn_id=turn_id),
                    metadata=core.metadata(),
                    timeout=60,
                )
            )
            assert [r.index for r in replayed] == list(range(len(replayed)))
            kinds = [r.event.WhichOneof("event") for r in replayed]
            assert kinds[0] == "started" and kinds[-1] == "completed"
            text = "".join(r.event.text_delta.text for r in replayed)
            assert text == ANSWER

            hanging = client.responses.create(model=MODEL, input="hang", background=True)
            model_double.wait_for_requests(2, timeout=60, main_only=True)
            cancelled = stub.CancelTurn(
                agent_pb2.CancelTurnRequest(turn_id=hanging.id.removeprefix("resp_")),
                metadata=core.metadata(),
                timeout=30,
            )
            assert cancelled.turn.status == agent_pb2.TURN_STATUS_CANCELLED
        with _http(stack) as http:
            assert _get(http, hanging.id)["status"] == "cancelled"
    finally:
        replica.cleanup()


def _restart(core: CoreProcess, **env: str) -> None:
    """Starts the core again on its data dir, port and secrets."""
    core.env = {**core.env, **env}
    with open(core.log_path, "ab") as log_file:
        core.process = subprocess.Popen(
            [sys.executable, "-m", "core_service.cli", "core"],
            env=core.env,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_serving(core)


def test_a_core_killed_mid_turn_leaves_it_failed_not_in_progress(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    core, _ = stack
    model_double.set_default(Reply.hang(120))
    running = client.responses.create(model=MODEL, input="a job cut short", background=True)
    model_double.wait_for_requests(1, timeout=60, main_only=True)
    queued = client.responses.create(model=MODEL, input="a job never started", background=True)
    assert queued.status == "queued"

    os.killpg(core.process.pid, signal.SIGKILL)
    core.process.wait(10)
    _restart(core)
    _assert_interrupted(stack, client, [running.id, queued.id])


def _assert_interrupted(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, response_ids: list[str]
) -> None:
    """Each response failed as interrupted, and says so when polled and replayed."""
    for response_id in response_ids:
        got = _retry_while_unavailable(lambda r=response_id: client.responses.retrieve(r))
        assert got.status == "failed", got
        assert got.error is not None and got.error.message.startswith("Interrupted")
        with _http(stack) as http:
            _get(http, response_id)
            final = check.check_stream(_replay(http, response_id))
        assert final["status"] == "failed"


def test_a_graceful_restart_leaves_it_failed_too(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    core, _ = stack
    model_double.set_default(Reply.hang(120))
    running = _retry_while_unavailable(
        lambda: client.responses.create(model=MODEL, input="a job", background=True)
    )
    model_double.wait_for_requests(1, timeout=60, main_only=True)
    queued = client.responses.create(model=MODEL, input="a job never started", background=True)
    assert queued.status == "queued"

    core.stop()  # SIGTERM: running turns get their grace, then are stopped
    _restart(core)
    _assert_interrupted(stack, client, [running.id, queued.id])


def test_a_full_journal_ends_the_stream_and_the_turn_runs_on(
    stack: tuple[CoreProcess, Facade], client: openai.OpenAI, model_double: ModelDouble
) -> None:
    core, _ = stack
    core.stop()
    _restart(core, CCAPI_BACKGROUND_MAX_EVENTS="5")
    model_double.script(Reply.text(ANSWER, chunks=8, delay=0.2))
    started = _retry_while_unavailable(
        lambda: client.responses.create(model=MODEL, input="talk a lot", background=True)
    )
    done = _poll(client, started.id, {"completed"})
    assert done.output_text == ANSWER
    with _http(stack) as http:
        events = _replay(http, started.id)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "stream_truncated"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        check.check_event(event)
    assert "response.output_text.delta" in [e["type"] for e in events]


def _retry_while_unavailable(call: Any) -> Any:
    """Calls until a facade worker found the restarted core (503 meanwhile)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except openai.APIStatusError as err:
            assert err.status_code == 503 and time.monotonic() < deadline, err
            time.sleep(0.2)
