"""Live: conversations that continue through Chat Completions, the files the agent
touched (chat and responses), and the /v1/sessions endpoints with their key scoping."""

from __future__ import annotations

import http.client
import json
from typing import Any

import httpx
import openai
import pytest

from http_facade import file_summary
from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, user_texts
from tests.stack import ccapi

MODEL = "sonnet"


@pytest.fixture(scope="module")
def other_key(core: CoreProcess) -> str:
    return ccapi(core.env, "keys", "create", "--name", "x").strip().splitlines()[-1]


def chat(facade: Facade, key: str, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **extra.pop("headers", {})}
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        timeout=90,
        headers=headers,
        json={"model": MODEL, "messages": messages, **extra},
    )
    assert r.status_code == 200, r.text
    return r


def files_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in body["claude_code"]["files"]}


# --- chat continuity -----------------------------------------------------------------------


def test_resent_history_with_our_file_summary_resumes_the_session(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use(
            "Write", {"file_path": "{cwd}/fib.py", "content": "def fib(n):\n    return n\n"}
        ),
        Reply.text("Wrote fib.py."),
    )
    first = chat(facade, core.api_key, [{"role": "user", "content": "write fib"}])
    session = first.headers["x-session-id"]
    body = first.json()
    answer = body["choices"][0]["message"]["content"]
    # The summary with the new code is appended for plain chat UIs.
    assert answer.startswith("Wrote fib.py.") and file_summary.MARKER in answer
    assert "```python\ndef fib(n):\n    return n\n```" in answer
    assert body["claude_code"]["session_id"] == session

    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    history = [
        {"role": "user", "content": "write fib"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "now test it"},
    ]
    second = chat(facade, core.api_key, history)
    assert second.headers["x-session-id"] == session
    last = model_double.main_requests[-1]
    assert last.last_user_text == "now test it"
    # Resumed: the first question is in the session's own history once, no transcript.
    assert sum("write fib" in t for t in user_texts(last)) == 1
    assert not any("Earlier in this conversation" in t for t in user_texts(last))

    # The same conversation resent again, one turn longer, still continues it.
    history += [
        {"role": "assistant", "content": second.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "and again"},
    ]
    third = chat(facade, core.api_key, history, stream=True)
    assert third.headers["x-session-id"] == session


def test_edited_history_forks_and_explicit_session_id(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))
    first = chat(facade, core.api_key, [{"role": "user", "content": "original question"}])
    session = first.headers["x-session-id"]
    answer = first.json()["choices"][0]["message"]["content"]
    edited = chat(
        facade,
        core.api_key,
        [
            {"role": "user", "content": "edited question"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "follow-up"},
        ],
    )
    assert edited.headers["x-session-id"] != session
    assert "original question" not in user_texts(model_double.main_requests[-1])

    # An explicit session id continues that session whatever the history says.
    by_header = chat(
        facade,
        core.api_key,
        [{"role": "user", "content": "by header"}],
        headers={"X-Session-Id": session},
    )
    assert by_header.headers["x-session-id"] == session
    assert any("original question" in t for t in user_texts(model_double.main_requests[-1]))
    by_body = chat(
        facade, core.api_key, [{"role": "user", "content": "by body"}], session_id=session
    )
    assert by_body.json()["claude_code"]["session_id"] == session
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {core.api_key}"},
        json={
            "model": MODEL,
            "session_id": "no-such-session",
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert r.status_code == 404 and r.json()["error"]["param"] == "session_id"


# --- file reports ------------------------------------------------------------------------


def test_write_edit_bash_binary_and_delete_in_chat(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/app.py", "content": "print('v1')\n"}),
        Reply.text("created"),
    )
    first = chat(facade, core.api_key, [{"role": "user", "content": "create app.py"}])
    session = first.headers["x-session-id"]
    assert files_of(first.json())["app.py"]["kind"] == "created"

    model_double.script(
        Reply.tool_use(
            "Edit", {"file_path": "{cwd}/app.py", "old_string": "v1", "new_string": "v2"}
        ),
        Reply.text("edited"),
    )
    second = chat(
        facade,
        core.api_key,
        [{"role": "user", "content": "edit it"}],
        headers={"X-Session-Id": session},
        stream=True,
    )
    chunks = [
        line[len("data: ") :] for line in second.text.splitlines() if line.startswith("data: {")
    ]
    final = json.loads(chunks[-1])
    change = files_of(final)["app.py"]
    assert change["kind"] == "modified" and "+print('v2')" in change["diff"]
    content = "".join(
        json.loads(c)["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if json.loads(c).get("choices")
    )
    assert content.startswith("edited") and "```diff" in content and "+print('v2')" in content

    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": "rm app.py && echo made > notes.txt && printf 'A\\000B' > blob.bin",
                "description": "shuffle files",
            },
        ),
        Reply.text("shuffled"),
    )
    third = chat(
        facade, core.api_key, [{"role": "user", "content": "shuffle"}], session_id=session
    ).json()
    files = files_of(third)
    assert files["app.py"]["kind"] == "deleted"
    assert files["notes.txt"]["kind"] == "created" and files["notes.txt"]["size_bytes"] == 5
    assert files["blob.bin"]["binary"] and files["blob.bin"]["diff"] is None
    text = third["choices"][0]["message"]["content"]
    assert "- `app.py` (deleted)" in text and "`blob.bin` (created, 3 bytes, binary)" in text
    assert "A\x00B" not in text


def test_file_reports_in_responses(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": "echo hi > a.txt && printf '\\211PNG\\000' > i.png",
                "description": "files",
            },
        ),
        Reply.text("made files"),
    )
    first = sdk.responses.create(model=MODEL, input="make files")
    files = {f["path"]: f for f in (first.model_extra or {})["claude_code"]["files"]}
    assert files["a.txt"]["kind"] == "created" and "+hi" in files["a.txt"]["diff"]
    assert files["i.png"]["binary"]
    bash = next(o for o in first.output if o.type == "mcp_call")
    assert bash.name == "Bash" and bash.status == "completed"

    model_double.script(
        Reply.tool_use("Bash", {"command": "rm a.txt", "description": "rm"}),
        Reply.text("removed"),
    )
    second = sdk.responses.create(model=MODEL, input="remove it", previous_response_id=first.id)
    got = sdk.responses.retrieve(second.id)
    files = {f["path"]: f for f in (got.model_extra or {})["claude_code"]["files"]}
    assert files == {"a.txt": files["a.txt"]} and files["a.txt"]["kind"] == "deleted"


# --- /v1/sessions --------------------------------------------------------------------------


def _raw_get(facade: Facade, path: str, key: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", facade.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_session_endpoints_downloads_and_traversal(
    facade: Facade, core: CoreProcess, model_double: ModelDouble, other_key: str
) -> None:
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": "mkdir -p src/deep && echo hello > src/deep/a.txt && "
                "printf 'A\\000B' > src/b.bin && echo 'x = 1' > m.py && "
                "ln -s /etc/passwd leak && ln -s ../../.. up",
                "description": "files",
            },
        ),
        Reply.text("ok"),
    )
    made = chat(facade, core.api_key, [{"role": "user", "content": "make files"}])
    session = made.headers["x-session-id"]
    auth = {"Authorization": f"Bearer {core.api_key}"}
    base = facade.base_url + "/v1/sessions"

    listed = httpx.get(base, headers=auth, timeout=30).json()
    assert listed["object"] == "list" and session in [s["id"] for s in listed["data"]]
    one = httpx.get(f"{base}/{session}", headers=auth, timeout=30).json()
    assert one["id"] == session and one["turn_count"] >= 1
    assert one["last_response_id"] == "resp_" + made.json()["claude_code"]["turn_id"]

    files = httpx.get(f"{base}/{session}/files", headers=auth, timeout=30).json()["data"]
    paths = [f["path"] for f in files]
    assert {"src/deep/a.txt", "src/b.bin", "m.py"} <= set(paths)
    assert "leak" not in paths and "up" not in paths

    r = httpx.get(f"{base}/{session}/files/src/deep/a.txt", headers=auth, timeout=30)
    assert r.status_code == 200 and r.content == b"hello\n"
    assert r.headers["content-type"].startswith("text/plain")
    r = httpx.get(f"{base}/{session}/files/src/b.bin", headers=auth, timeout=30)
    assert r.content == b"A\x00B" and r.headers["content-type"] == "application/octet-stream"
    r = httpx.get(f"{base}/{session}/files/src%2Fdeep%2Fa.txt", headers=auth, timeout=30)
    assert r.status_code == 200 and r.content == b"hello\n"

    for path in (
        "../../ccapi.db",
        "src/../../x",
        "%2e%2e/%2e%2e/ccapi.db",
        "%2E%2E%2F%2E%2E%2Fccapi.db",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "leak",
        "up/etc/passwd",
        "src/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fccapi.db",
    ):
        status, body = _raw_get(facade, f"/v1/sessions/{session}/files/{path}", core.api_key)
        assert status in (400, 404), (path, status, body[:200])
        assert b"root:" not in body and b"SQLite" not in body, path

    # Another key sees nothing of it.
    other = {"Authorization": f"Bearer {other_key}"}
    assert session not in [
        s["id"] for s in httpx.get(base, headers=other, timeout=30).json()["data"]
    ]
    for url in (f"{base}/{session}", f"{base}/{session}/files", f"{base}/{session}/files/m.py"):
        r = httpx.get(url, headers=other, timeout=30)
        assert r.status_code == 404, (url, r.text)
    assert httpx.delete(f"{base}/{session}", headers=other, timeout=30).status_code == 404
    r = httpx.post(
        facade.base_url + "/v1/chat/completions",
        timeout=30,
        headers=other,
        json={
            "model": MODEL,
            "session_id": session,
            "messages": [{"role": "user", "content": "steal"}],
        },
    )
    assert r.status_code == 404

    r = httpx.delete(f"{base}/{session}", headers=auth, timeout=30)
    assert r.json() == {"id": session, "object": "session.deleted", "deleted": True}
    assert httpx.get(f"{base}/{session}", headers=auth, timeout=30).status_code == 404
    assert httpx.get(f"{base}/{session}/files/m.py", headers=auth, timeout=30).status_code == 404


def test_a_key_cannot_see_another_keys_responses(
    sdk: openai.OpenAI, facade: Facade, model_double: ModelDouble, other_key: str
) -> None:
    model_double.set_default(Reply.text("mine"))
    mine = sdk.responses.create(model=MODEL, input="mine")
    theirs = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=other_key, max_retries=0)
    with theirs:
        with pytest.raises(openai.NotFoundError):
            theirs.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.create(model=MODEL, input="x", previous_response_id=mine.id)
        with pytest.raises(openai.NotFoundError):
            theirs.responses.delete(mine.id)
    assert sdk.responses.retrieve(mine.id).output_text == "mine"
