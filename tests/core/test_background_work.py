"""Nothing a conversation starts outlives its turn or its session: background
work is refused (its answer would arrive with no turn open and shift every
later answer by one), and a session that is deleted leaves no process, no
command and no model traffic behind."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, ToolPermissionContext

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from core_service.agent.permissions import PermissionResult, make_permission_callback
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, RecordedRequest, Reply
from tests.stack import CoreProcess, start_core


def _decide(tool: str, tool_input: dict[str, Any], workspace: Path) -> PermissionResult:
    callback = make_permission_callback(workspace)
    return asyncio.run(callback(tool, tool_input, ToolPermissionContext()))  # type: ignore[arg-type]


def test_permission_callback_refuses_every_way_to_start_background_work(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("Bash", {"command": "sleep 8", "run_in_background": True}),
        ("Agent", {"prompt": "x", "description": "x", "run_in_background": True}),
        ("Task", {"prompt": "x", "description": "x", "run_in_background": True}),
        ("Agent", {"prompt": "x", "description": "x", "isolation": "remote"}),
    ]
    for tool, tool_input in calls:
        result = _decide(tool, tool_input, tmp_path)
        assert isinstance(result, PermissionResultDeny), (tool, tool_input)
        assert "foreground" in result.message
    # A subagent runs in the background unless told otherwise: we tell it.
    result = _decide("Agent", {"prompt": "x", "description": "x"}, tmp_path)
    assert isinstance(result, PermissionResultAllow)
    assert result.updated_input is not None and result.updated_input["run_in_background"] is False
    assert isinstance(_decide("Bash", {"command": "true"}, tmp_path), PermissionResultAllow)


def _echo(req: RecordedRequest) -> Reply:
    return Reply.text(f"echo: {req.last_user_text.strip()}")


def test_a_background_command_is_refused_and_later_turns_get_their_own_answers(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    """The issue's repro: a background command finishing between turns made
    Claude Code ask the model on its own; turn 2 got that answer, turn 3 turn 2's."""
    model_double.set_default(_echo)
    model_double.script(
        Reply.tool_use(
            "Bash", {"command": "sleep 2; echo x", "description": "x", "run_in_background": True}
        ),
        Reply.text("first answer"),
    )
    first = run_turn(core, request("start it"))
    assert first.error is None, first.error
    result = first.of("tool_result")[0].tool_result
    assert result.is_error and "foreground" in result.output_excerpt
    session_id = first.started.started.session_id
    asked = len(model_double.main_requests)
    time.sleep(5)  # the command would have finished by now
    assert len(model_double.main_requests) == asked, "Claude Code asked the model between turns"
    for n in (2, 3):
        marker = f"turn{n}-marker-{secrets.token_hex(3)}"
        log = run_turn(core, request(marker, session_id=session_id))
        assert log.error is None, log.error
        assert log.of("completed")[0].completed.text == f"echo: {marker}"


def test_a_subagent_runs_in_the_foreground_and_its_answer_is_the_tool_result(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use(
            "Agent",
            {"description": "helper", "prompt": "do it", "subagent_type": "general-purpose"},
        ),
        Reply.text("subagent says hello"),
        Reply.text("main done"),
    )
    log = run_turn(core, request("use a subagent"), timeout=120)
    assert log.error is None, log.error
    assert log.of("completed")[0].completed.text == "main done"
    last = model_double.main_requests[-1]
    results = [str(block.get("content")) for block in last.last_tool_results]
    assert any("subagent says hello" in r for r in results), results


def _pids_running(argument: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argument.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _wait_for(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return bool(check())


def test_what_a_command_leaves_running_ends_with_the_command(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    """Detaching (nohup, setsid, a subshell) does not let a process outlive its
    command: commands run in the sandbox's own pid namespace."""
    left = f"285.{secrets.randbelow(10**6):06d}"
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": f"(setsid nohup sleep {left} >/dev/null 2>&1 &); "
                f"nohup sleep {left} >/dev/null 2>&1 & echo started",
                "description": "x",
            },
        ),
        Reply.text("done"),
    )
    log = run_turn(core, request("leave something running"))
    assert log.error is None, log.error
    try:
        assert _wait_for(lambda: not _pids_running(left), 5), _pids_running(left)
    finally:
        for pid in _pids_running(left):
            os.kill(pid, 9)


def test_deleting_a_session_ends_claude_code_and_every_command_it_started(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    """Deleted mid-command: the SDK's disconnect timed out and skipped its
    terminate/kill, so Claude Code and its commands ran on and asked the model again."""
    tag = f"{secrets.randbelow(10**6):06d}"
    running, detached = f"289.{tag}", f"288.{tag}"
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": f"(setsid nohup sleep {detached} >/dev/null 2>&1 &); sleep {running}",
                "description": "x",
            },
        ),
        Reply.text("after the command"),
    )
    events: list[pb.RunTurnResponse] = []

    def turn() -> None:
        with core.channel() as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            try:
                for event in stub.RunTurn(request("run it"), metadata=core.metadata(), timeout=120):
                    events.append(event)
            except grpc.RpcError:
                pass

    worker = threading.Thread(target=turn, daemon=True)
    worker.start()
    try:
        assert _wait_for(lambda: _pids_running(running), 60), "the command did not start"
        session_id = events[0].started.session_id
        claude = [p for p in _pids_running(f"--session-id={session_id}")]
        assert claude, "no Claude Code process for the session"
        asked = len(model_double.main_requests)
        with core.channel() as channel:
            sessions_pb2_grpc.SessionServiceStub(channel).DeleteSession(
                sessions_pb2.DeleteSessionRequest(session_id=session_id),
                metadata=core.metadata(),
                timeout=60,
            )
        # Gone once the delete has answered, not minutes later.
        left = _pids_running(running) + _pids_running(detached)
        left += [p for p in claude if os.path.exists(f"/proc/{p}/cwd") and _alive(p)]
        assert not left, f"still running after the delete: {left}"
        worker.join(30)
        time.sleep(2)
        assert len(model_double.main_requests) == asked, "the deleted session asked the model"
    finally:
        for pid in _pids_running(running) + _pids_running(detached):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid and _alive(int(entry.name)):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_an_idle_session_is_reaped_with_everything_its_claude_code_started(
    model_double: ModelDouble,
) -> None:
    core = start_core(model_double.url, CCAPI_SESSION_IDLE_SECONDS="1", CCAPI_POOL_SIZE="0")
    try:
        model_double.script(
            Reply.tool_use("Bash", {"command": "echo hi > hi.txt", "description": "x"}),
            Reply.text("done"),
        )
        log = run_turn(core, request("say hi"))
        assert log.error is None, log.error
        workspace = Path(model_double.main_requests[0].working_directory or "")
        uid = workspace.stat().st_uid
        if uid == os.getuid():
            pytest.skip("conversations run as the core's own uid (not root)")
        assert _wait_for(lambda: not _processes_of(uid), 20), _processes_of(uid)
        # The session resumes on a fresh process.
        model_double.script(Reply.text("back"))
        again = run_turn(core, request("again", session_id=log.started.started.session_id))
        assert again.error is None and again.of("completed")[0].completed.text == "back"
    finally:
        core.cleanup()
