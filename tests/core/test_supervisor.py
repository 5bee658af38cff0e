"""`ccapi serve` heals: a core killed with SIGKILL mid-stream is restarted,
the facade answers 503 with Retry-After meanwhile, the cut turn is recovered
(failed `interrupted`, with its request-log row), and the next request works
with no manual step. A facade worker killed is replaced by gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.model_double import ModelDouble, Reply
from tests.stack import REPO, claude_processes_in, core_env, free_port, make_data_dir


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    data_dir: Path
    out: Path
    url: str
    key: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def output(self) -> str:
        return self.out.read_text(errors="replace")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def part_pid(served: Served, name: str) -> int:
    """The pid of one `ccapi` part started by the supervisor."""
    for pid in _children(served.process.pid):
        args = _cmdline(pid)
        if "core_service.cli" in args and name in args:
            return pid
    raise AssertionError(f"no {name} part running:\n{served.output()[-3000:]}")


def _wait_ready(served: Served, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"ccapi serve exited:\n{served.output()[-4000:]}")
        try:
            if httpx.get(served.url + "/health/ready", timeout=2).status_code == 200:
                # One worker answered; every other worker's channel retries
                # within its reconnect backoff (1 s at most).
                time.sleep(1.5)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the stack did not get ready:\n{served.output()[-4000:]}")


@pytest.fixture(scope="module")
def served(model_double: ModelDouble) -> Iterator[Served]:
    data_dir = make_data_dir()
    http_port = free_port()
    env = core_env(
        model_double.url,
        data_dir,
        free_port(),
        CCAPI_HOST="127.0.0.1",
        CCAPI_HTTP_PORT=str(http_port),
        CCAPI_ADMIN_PORT=str(free_port()),
        CCAPI_HTTP_WORKERS="2",
    )
    out = data_dir.parent / f"{data_dir.name}.serve.log"
    with open(out, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "core_service.cli", "serve"],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, data_dir, out, f"http://127.0.0.1:{http_port}")
    try:
        _wait_ready(served)
        keys = [line for line in served.output().splitlines() if line.startswith("sk-cc-")]
        assert keys, served.output()[-3000:]
        served.key = keys[0]
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Stream:
    """A streaming /v1/responses call read in a thread."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float = 0.0
    error: str = ""


def _stream_in_thread(served: Served, body: dict[str, Any]) -> tuple[Stream, threading.Thread]:
    stream = Stream()

    def read() -> None:
        try:
            with httpx.stream(
                "POST",
                served.url + "/v1/responses",
                json={**body, "stream": True},
                headers=served.headers(),
                timeout=httpx.Timeout(120, connect=5),
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        stream.events.append(json.loads(line[6:]))
        except httpx.HTTPError as error:
            stream.error = repr(error)
        stream.ended_at = time.monotonic()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return stream, thread


def _until_ok(served: Served, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """GET `path` (POST `body` to it) until it answers 200, as a client honouring
    Retry-After does: each facade worker's channel finds the restarted core on
    its own, within its reconnect backoff (1 s at most), and until then that
    worker answers 503 without having reached the core."""
    deadline = time.monotonic() + 5
    while True:
        if body is None:
            got = httpx.get(served.url + path, headers=served.headers(), timeout=10)
        else:
            got = httpx.post(served.url + path, json=body, headers=served.headers(), timeout=90)
        if got.status_code == 200 or time.monotonic() > deadline:
            assert got.status_code == 200, got.text
            return got
        assert got.status_code == 503 and got.headers["Retry-After"], got.text
        time.sleep(0.1)


def _output_text(response: dict[str, Any]) -> str:
    return "".join(
        part.get("text", "")
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def _log_rows(served: Served, turn_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(served.data_dir / "ccapi.db", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM request_logs WHERE turn_id = ?", (turn_id,)).fetchall()


def test_a_core_killed_mid_stream_is_restarted_and_its_turn_recovered(
    served: Served, model_double: ModelDouble
) -> None:
    # One model call that uses a tool (Claude Code reports its usage), then
    # one that hangs: the core dies in the middle of the turn.
    model_double.script(
        Reply.tool_use("Read", {"file_path": "{cwd}/notes.txt"}, usage={"input_tokens": 321}),
        Reply.hang(120),
    )
    stream, reader = _stream_in_thread(served, {"model": "sonnet", "input": "read my notes"})
    try:
        model_double.wait_for_requests(2, timeout=60)
    except TimeoutError:
        raise AssertionError(f"{stream}\n{served.output()[-3000:]}") from None
    time.sleep(0.5)  # the running turn saves its progress off its path
    core_before = part_pid(served, "core")
    os.kill(core_before, signal.SIGKILL)
    killed_at = time.monotonic()

    # The client is told at once.
    reader.join(10)
    assert stream.ended_at, "the stream did not end"
    assert stream.ended_at - killed_at < 2
    kinds = [event.get("type") for event in stream.events]
    assert kinds[0] == "response.created"
    assert kinds[-1] in ("error", "response.failed"), kinds
    response_id = stream.events[0]["response"]["id"]

    # Meanwhile the facade answers 503 with Retry-After, OpenAI-shaped; the
    # readiness probe fails and the liveness probe does not.
    unavailable: httpx.Response | None = None
    ready_failed = live_ok = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        models = httpx.get(served.url + "/v1/models", headers=served.headers(), timeout=10)
        if models.status_code == 200:
            break
        unavailable = unavailable or models
        if not ready_failed:
            ready = httpx.get(served.url + "/health/ready", timeout=5)
            ready_failed = ready.status_code == 503 and ready.headers.get("Retry-After") == "1"
            live_ok = httpx.get(served.url + "/health/live", timeout=5).status_code == 200
        time.sleep(0.05)
    else:
        raise AssertionError(f"the core did not come back:\n{served.output()[-4000:]}")
    assert unavailable is not None, "no 503 was seen while the core was down"
    assert unavailable.status_code == 503
    assert int(unavailable.headers["Retry-After"]) >= 1
    error = unavailable.json()["error"]
    assert error["type"] == "server_error" and error["message"]
    assert ready_failed and live_ok
    assert part_pid(served, "core") != core_before
    assert "part exited; restarting it" in served.output()

    # The cut turn is stored as failed, reason interrupted, with its row in
    # the request log, tokens so far included.
    got = _until_ok(served, f"/v1/responses/{response_id}")
    assert got.json()["status"] == "failed"
    # OpenAI's response error codes are a fixed set: the reason is in the message.
    assert got.json()["error"]["code"] == "server_error"
    assert got.json()["error"]["message"].startswith("Interrupted: the service restarted")
    turn_id = response_id.removeprefix("resp_")
    rows = _log_rows(served, turn_id)
    assert len(rows) == 1
    assert rows[0]["outcome"] == "error" and rows[0]["status"] == 503
    assert rows[0]["error"].startswith("Interrupted")
    assert rows[0]["input_tokens"] >= 321
    assert rows[0]["endpoint"] != ""

    # The conversation goes on, no manual step needed.
    model_double.script(Reply.text("Still here after the restart."))
    after = _until_ok(
        served,
        "/v1/responses",
        {"model": "sonnet", "input": "are you there?", "previous_response_id": response_id},
    )
    assert _output_text(after.json()) == "Still here after the restart."


def test_completed_requests_are_in_the_request_log_after_a_kill(
    served: Served, model_double: ModelDouble
) -> None:
    _wait_ready(served)
    model_double.set_default(Reply.text("Quick answer."))
    ids = []
    for n in range(3):
        done = httpx.post(
            served.url + "/v1/responses",
            json={"model": "sonnet", "input": f"quick {n}"},
            headers=served.headers(),
            timeout=90,
        )
        assert done.status_code == 200, done.text
        ids.append(done.json()["id"].removeprefix("resp_"))
    listed = httpx.get(served.url + "/v1/models", headers=served.headers(), timeout=10)
    assert listed.status_code == 200
    # At once: the request-log writer has not written its batch yet.
    os.kill(part_pid(served, "core"), signal.SIGKILL)
    time.sleep(1)
    _wait_ready(served)
    for turn_id in ids:
        rows = _log_rows(served, turn_id)
        assert len(rows) == 1, turn_id
        assert rows[0]["outcome"] == "ok" and rows[0]["status"] == 200
    with sqlite3.connect(served.data_dir / "ccapi.db", timeout=30) as db:
        (models_rows,) = db.execute(
            "SELECT count(*) FROM request_logs WHERE endpoint LIKE '%models%'"
        ).fetchone()
    assert models_rows >= 1


def test_a_killed_facade_worker_is_replaced_and_requests_keep_working(served: Served) -> None:
    _wait_ready(served)
    arbiter = part_pid(served, "http")
    workers = _children(arbiter)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    for _ in range(20):
        _until_ok(served, "/v1/models")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _children(arbiter)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"gunicorn did not replace the worker: {_children(arbiter)}")
    assert part_pid(served, "http") == arbiter


def test_sigterm_stops_every_part_and_claude_code(
    served: Served, model_double: ModelDouble
) -> None:
    _wait_ready(served)
    model_double.script(Reply.hang(120))
    _, reader = _stream_in_thread(served, {"model": "sonnet", "input": "long one"})
    model_double.wait_for_requests(1, timeout=60)
    workspace = Path(model_double.main_requests[-1].working_directory or "")
    assert claude_processes_in(workspace)
    parts = [part_pid(served, name) for name in ("core", "http", "admin")]
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(60) == 0
    reader.join(10)
    for pid in parts:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert claude_processes_in(workspace) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
