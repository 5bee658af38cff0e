"""Conversations continue: by session id, by previous turn, by resent history;
they fork instead of interleaving, and survive a core restart."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import agent_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from claudecode.v1 import content_pb2 as cpb
from tests.core.helpers import request, run_turn, user
from tests.model_double import ModelDouble, RecordedRequest, Reply
from tests.stack import CoreProcess, ccapi, start_core


def _history_texts(req: RecordedRequest) -> list[str]:
    """The user texts Claude Code sent the model, oldest first."""
    texts = []
    for message in req.messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                b.get("text", "")
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            )
    return texts


def _said(req: RecordedRequest, text: str) -> bool:
    return any(text in t for t in _history_texts(req))


def test_previous_turn_resumes_the_session_across_three_turns(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = run_turn(core, request("alpha"))
    second = run_turn(core, request("beta", previous_turn_id=first.started.started.turn_id))
    third = run_turn(core, request("gamma", previous_turn_id=second.started.started.turn_id))

    ids = {log.started.started.session_id for log in (first, second, third)}
    assert len(ids) == 1
    last = model_double.main_requests[-1]
    # The model sees the earlier turns because the session was resumed.
    assert _said(last, "alpha") and _said(last, "beta") and last.last_user_text == "gamma"
    assert any("echo: alpha" in str(m) for m in last.messages)
    dirs = {r.working_directory for r in model_double.main_requests}
    assert len(dirs) == 1


def test_two_turns_from_one_parent_fork(core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    root = run_turn(core, request("root question"))
    parent = root.started.started.turn_id
    left = run_turn(core, request("left branch", previous_turn_id=parent))
    right = run_turn(core, request("right branch", previous_turn_id=parent))

    assert left.error is None and right.error is None, (left.error, right.error)
    assert left.started.started.session_id == root.started.started.session_id
    assert right.started.started.session_id != root.started.started.session_id
    last = model_double.main_requests[-1]
    assert _said(last, "root question") and last.last_user_text == "right branch"
    assert not _said(last, "left branch")


def test_resent_history_continues_the_session(core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = run_turn(core, request("my name is Ada"))
    answer = first.of("completed")[0].completed.text
    history = [
        user("my name is Ada"),
        cpb.Message(role=cpb.ROLE_ASSISTANT, content=[cpb.ContentPart(text=answer)]),
        user("what is my name?"),
    ]
    second = run_turn(core, pb.RunTurnRequest(model="sonnet", messages=history))
    assert second.started.started.session_id == first.started.started.session_id
    assert second.started.started.resumed
    last = model_double.main_requests[-1]
    assert last.last_user_text == "what is my name?"
    # Sent once, as the session's own history, not pasted into the new prompt.
    assert sum("my name is Ada" in t for t in _history_texts(last)) == 1


def test_edited_history_never_resumes_the_wrong_session(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = run_turn(core, request("original question"))
    edited = [
        user("edited question"),
        cpb.Message(
            role=cpb.ROLE_ASSISTANT, content=[cpb.ContentPart(text="echo: original question")]
        ),
        user("follow-up"),
    ]
    second = run_turn(core, pb.RunTurnRequest(model="sonnet", messages=edited))
    assert second.started.started.session_id != first.started.started.session_id
    assert not second.started.started.resumed
    last = model_double.main_requests[-1]
    texts = _history_texts(last)
    # A new session whose prompt carries the edited transcript; the original
    # question never reaches the model as a message of its own.
    assert "original question" not in texts
    assert any("User: edited question" in t for t in texts)
    assert "follow-up" in texts


def test_a_key_cannot_use_or_see_another_keys_session(core: CoreProcess) -> None:
    other = ccapi(core.env, "keys", "create", "--name", "other").strip().splitlines()[-1]
    mine = run_turn(core, request("mine"))
    session_id = mine.started.started.session_id
    theirs = run_turn(core, request("steal", session_id=session_id), key=other)
    assert theirs.error is not None and theirs.error.code() == grpc.StatusCode.NOT_FOUND
    with core.channel() as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        listed = stub.ListSessions(
            sessions_pb2.ListSessionsRequest(), metadata=core.metadata(other)
        )
        assert session_id not in [s.id for s in listed.sessions]
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetSession(
                sessions_pb2.GetSessionRequest(session_id=session_id), metadata=core.metadata(other)
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        mine_listed = stub.ListSessions(
            sessions_pb2.ListSessionsRequest(), metadata=core.metadata()
        )
        assert session_id in [s.id for s in mine_listed.sessions]


def test_session_files_can_be_listed_and_read_but_not_escaped(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": "mkdir -p src && echo hello > src/a.txt && ln -s /etc/passwd leak",
                "description": "files",
            },
        ),
        Reply.text("ok"),
    )
    log = run_turn(core, request("make files"))
    session_id = log.started.started.session_id
    with core.channel() as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        md = core.metadata()
        files = stub.ListSessionFiles(
            sessions_pb2.ListSessionFilesRequest(session_id=session_id), metadata=md
        )
        assert [f.path for f in files.files] == ["src/a.txt"]
        got = stub.GetSessionFile(
            sessions_pb2.GetSessionFileRequest(session_id=session_id, path="src/a.txt"), metadata=md
        )
        assert got.content == b"hello\n" and got.media_type == "text/plain"
        for bad in ("../../ccapi.db", "/etc/passwd", "leak", "src/../../x", "%2e%2e/ccapi.db"):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetSessionFile(
                    sessions_pb2.GetSessionFileRequest(session_id=session_id, path=bad), metadata=md
                )
            assert caught.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
            ), bad


def test_deleting_a_session_removes_its_workspace(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    from pathlib import Path

    log = run_turn(core, request("hello"))
    workspace = Path(model_double.main_requests[-1].working_directory or "")
    assert workspace.exists()
    with core.channel() as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        stub.DeleteSession(
            sessions_pb2.DeleteSessionRequest(session_id=log.started.started.session_id),
            metadata=core.metadata(),
        )
    assert not workspace.exists()
    again = run_turn(core, request("more", session_id=log.started.started.session_id))
    assert again.error is not None and again.error.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def private_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url)
    yield process
    process.cleanup()


def test_a_session_resumes_after_a_core_restart(
    private_core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = run_turn(private_core, request("remember the word zebra"))
    assert private_core.stop() == 0
    restarted = start_core(model_double.url, data_dir=private_core.data_dir)
    try:
        restarted.api_key = private_core.api_key
        second = run_turn(
            restarted, request("which word?", session_id=first.started.started.session_id)
        )
        assert second.error is None, second.error
        assert _said(model_double.main_requests[-1], "remember the word zebra")
    finally:
        restarted.stop()


def test_each_turn_books_its_own_cost_through_follow_ups_forks_and_restarts(
    private_core: CoreProcess, model_double: ModelDouble
) -> None:
    """Claude Code reports a running cost total, carried on through resumes and
    forks; every turn here uses the same tokens, so each must cost the same."""
    model_double.set_default(Reply.text("the same answer"))
    first = run_turn(private_core, request("one"))
    parent = first.started.started.turn_id
    follow_up = run_turn(private_core, request("two", previous_turn_id=parent))
    fork = run_turn(private_core, request("three", previous_turn_id=parent))
    assert fork.started.started.session_id != first.started.started.session_id
    assert private_core.stop() == 0
    restarted = start_core(model_double.url, data_dir=private_core.data_dir)
    try:
        restarted.api_key = private_core.api_key
        resumed = run_turn(
            restarted,
            request("four", previous_turn_id=follow_up.started.started.turn_id),
        )
    finally:
        restarted.stop()

    costs = [
        log.of("completed")[0].completed.usage.cost_usd
        for log in (first, follow_up, fork, resumed)
    ]
    assert costs[0] > 0
    assert costs == pytest.approx([costs[0]] * 4, rel=1e-6), costs


def test_get_and_delete_a_stored_turn(core: CoreProcess) -> None:
    log = run_turn(core, request("store me", store=True))
    turn_id = log.started.started.turn_id
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        got = stub.GetTurn(pb.GetTurnRequest(turn_id=turn_id), metadata=core.metadata())
        assert got.turn.status == pb.TURN_STATUS_COMPLETED
        assert got.turn.input[0].content[0].text == "store me"
        stub.DeleteTurn(pb.DeleteTurnRequest(turn_id=turn_id), metadata=core.metadata())
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetTurn(pb.GetTurnRequest(turn_id=turn_id), metadata=core.metadata())
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def quick_idle_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    process = start_core(model_double.url, CCAPI_SESSION_IDLE_SECONDS="2", CCAPI_POOL_SIZE="0")
    yield process
    process.cleanup()


def test_idle_processes_close_and_come_back_on_demand(
    quick_idle_core: CoreProcess, model_double: ModelDouble
) -> None:
    import time
    from pathlib import Path

    from tests.stack import claude_processes_in

    core = quick_idle_core
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = run_turn(core, request("keep this in mind: kiwi"))
    workspace = Path(model_double.main_requests[-1].working_directory or "")
    assert claude_processes_in(workspace)
    deadline = time.monotonic() + 20
    while claude_processes_in(workspace) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert claude_processes_in(workspace) == []
    again = run_turn(core, request("what fruit?", session_id=first.started.started.session_id))
    assert again.error is None, again.error
    assert _said(model_double.main_requests[-1], "keep this in mind: kiwi")
