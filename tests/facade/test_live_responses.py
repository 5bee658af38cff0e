"""Live Responses API: gunicorn facade + real core + real Claude Code CLI + model double,
driven with the official openai SDK."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, user_texts
from tests.facade.openresponses_check import check_stream, checked, sse_events

MODEL = "sonnet"


def echo(model_double: ModelDouble) -> None:
    model_double.set_default(Reply.dynamic(lambda r: Reply.text(f"echo: {r.last_user_text}")))


def extra(obj: Any) -> dict[str, Any]:
    return dict((obj.model_extra or {})["claude_code"])


def test_create_retrieve_input_items_delete(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(Reply.text("Hello from the double."))
    done = checked(
        sdk.responses.create(
            model=MODEL, input="Say hello", instructions="Be terse.", metadata={"ticket": "42"}
        )
    )
    assert done.id.startswith("resp_") and done.object == "response"
    assert done.status == "completed" and done.output_text == "Hello from the double."
    assert done.usage is not None and done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.instructions == "Be terse." and done.metadata == {"ticket": "42"}
    assert "Be terse." in model_double.main_requests[-1].system_text

    got = checked(sdk.responses.retrieve(done.id))
    assert got.id == done.id and got.output_text == done.output_text
    assert got.status == "completed" and got.instructions == "Be terse."
    assert got.metadata == {"ticket": "42"}
    assert extra(got)["session_id"] == extra(done)["session_id"]

    items = sdk.responses.input_items.list(done.id)
    assert [(i.type, getattr(i, "role", None)) for i in items.data] == [("message", "user")]
    assert json.dumps(items.data[0].to_dict()["content"], sort_keys=True) == json.dumps(
        [{"type": "input_text", "text": "Say hello"}], sort_keys=True
    )

    sdk.responses.delete(done.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(done.id)


def test_store_false_is_not_retrievable(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    echo(model_double)
    done = sdk.responses.create(model=MODEL, input="secret", store=False)
    assert (done.model_extra or {})["store"] is False and done.output_text == "echo: secret"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(done.id)


def test_stream_event_order(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.tool_use(
            "Write",
            {"file_path": "{cwd}/fib.py", "content": "print(1)\n"},
            text_before="Writing it.",
        ),
        Reply.thinking("Check: the file is there.", "Wrote fib.py for you."),
    )
    with sdk.responses.stream(model=MODEL, input="write fib") as stream:
        events = list(stream)
        final = checked(stream.get_final_response())
    types: list[str] = [e.type for e in events]
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    # Every item opens and closes in order; text parts have their full lifecycle.
    for kind in ("output_text", "reasoning_summary_text"):
        assert types.index(f"response.{kind}.delta") < types.index(f"response.{kind}.done")
    text_events = [
        t for t in types if t.startswith(("response.content_part", "response.output_text"))
    ]
    assert text_events[0] == "response.content_part.added"
    assert text_events[-2:] == ["response.output_text.done", "response.content_part.done"]
    assert types.count("response.output_item.added") == types.count("response.output_item.done")
    # In the order the agent produced them: text, tool call, thinking, text.
    kinds = [o.type for o in final.output]
    assert kinds == ["message", "mcp_call", "reasoning", "message"], kinds
    assert final.output[2].summary[0].text == "Check: the file is there."  # type: ignore[union-attr]
    call = next(o for o in final.output if o.type == "mcp_call")
    assert call.name == "Write" and call.status == "completed" and "fib.py" in call.arguments
    assert final.output_text.startswith("Writing it.")
    assert final.output_text.endswith("Wrote fib.py for you.")
    files = extra(final)["files"]
    assert [(f["path"], f["kind"]) for f in files] == [("fib.py", "created")]
    assert "+print(1)" in files[0]["diff"]
    # The raw wire: `event:` lines naming each data's type.
    r = httpx.post(
        str(sdk.base_url) + "responses",
        timeout=90,
        headers={"Authorization": f"Bearer {sdk.api_key}"},
        json={"model": MODEL, "input": "again", "stream": True},
    )
    blocks = [b for b in r.text.split("\n\n") if b and not b.startswith(":")]
    assert all(b.startswith("event: response.") and "\ndata: {" in b for b in blocks)
    check_stream(sse_events(r.text))


def test_previous_response_id_across_three_turns(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    echo(model_double)
    first = sdk.responses.create(model=MODEL, input="alpha")
    second = sdk.responses.create(model=MODEL, input="beta", previous_response_id=first.id)
    third = checked(
        sdk.responses.create(model=MODEL, input="gamma", previous_response_id=second.id)
    )
    assert third.previous_response_id == second.id
    assert len({extra(r)["session_id"] for r in (first, second, third)}) == 1
    last = model_double.main_requests[-1]
    texts = user_texts(last)
    # The model sees the earlier turns because the session was resumed (once each,
    # not pasted into the new prompt).
    assert sum("alpha" in t for t in texts) == 1 and sum("beta" in t for t in texts) == 1
    assert last.last_user_text == "gamma"
    assert any("echo: alpha" in str(m) for m in last.messages)
    assert checked(sdk.responses.retrieve(third.id)).previous_response_id == second.id


def test_two_responses_from_one_parent_fork(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    echo(model_double)
    root = sdk.responses.create(model=MODEL, input="root question")
    left = sdk.responses.create(model=MODEL, input="left branch", previous_response_id=root.id)
    right = checked(
        sdk.responses.create(model=MODEL, input="right branch", previous_response_id=root.id)
    )
    assert extra(left)["session_id"] == extra(root)["session_id"]
    assert extra(right)["session_id"] != extra(root)["session_id"]
    texts = user_texts(model_double.main_requests[-1])
    assert any("root question" in t for t in texts)
    assert not any("left branch" in t for t in texts)


def test_cancel_a_running_response(
    sdk: openai.OpenAI, facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.hang(60))
    seen: list[Any] = []
    stream_done = threading.Event()

    def run() -> None:
        with sdk.responses.create(model=MODEL, input="take your time", stream=True) as stream:
            for event in stream:
                seen.append(event)
        stream_done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    model_double.wait_for_requests(1, timeout=30)
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    response_id = seen[0].response.id
    assert sdk.responses.retrieve(response_id).status == "in_progress"
    started = time.monotonic()
    cancelled = checked(sdk.responses.cancel(response_id))  # another worker, maybe
    assert stream_done.wait(15), "the stream did not end after the cancel"
    assert time.monotonic() - started < 10
    model_double.wait_for_aborted(1, timeout=10)  # the model call was stopped
    assert sdk.responses.retrieve(response_id).status == cancelled.status
    assert cancelled.status == "cancelled"
    assert seen[-1].type == "response.incomplete" and seen[-1].response.status == "cancelled"
    thread.join(5)


def test_request_errors(sdk: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"conversation": "conv_123"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.responses.create(model=MODEL, input="x", extra_body=kwargs)
        assert caught.value.code == "unsupported_parameter"
        assert caught.value.param == param
    with pytest.raises(openai.NotFoundError) as nf:
        sdk.responses.create(model=MODEL, input="x", previous_response_id="resp_tnope")
    assert nf.value.param == "previous_response_id"


def test_retrieve_keeps_the_order_the_stream_had(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use(
            "Write",
            {"file_path": "{cwd}/a.txt", "content": "a"},
            text_before="First I write the file.",
        ),
        Reply.text("Then I am done."),
    )
    done = sdk.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be careful."},
            {"role": "user", "content": "write a.txt"},
        ],
    )
    kinds = [item.type for item in checked(done).output]
    got = checked(sdk.responses.retrieve(done.id))
    assert [item.type for item in got.output] == kinds
    assert kinds.index("mcp_call") > 0 and kinds[-1] == "message"
    assert [i.id for i in got.output] == [i.id for i in done.output]
    assert got.output_text == done.output_text
    items = sdk.responses.input_items.list(done.id, order="asc")
    assert [getattr(i, "role", None) for i in items.data] == ["developer", "user"]
