"""Live: files attached to a message land in the conversation's workspace
(gunicorn facade, real core, real Claude Code CLI, model double). The double
makes the agent read the files; what it saw and what the client got back
show the file arrived."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google.protobuf import field_mask_pb2

from claudecode.v1 import admin_pb2, admin_pb2_grpc, agent_pb2_grpc
from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev
from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply
from tests.stack import ccapi

MODEL = "sonnet"
CSV = b"name,qty\nbolts,12\nnuts,30\n"


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def file_part(filename: str, data: bytes, mime: str = "text/csv") -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data_url(mime, data), "filename": filename}}


def user(*parts: dict[str, Any], text: str = "Look at the attached file.") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def tiny_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff\x00\x00" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def tiny_pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length 44 >>\nstream\nBT /F1 24 Tf 20 100 Td (Hello PDF) Tj ET\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


@pytest.fixture(scope="module")
def other_sdk(facade: Facade, core: CoreProcess) -> Iterator[openai.OpenAI]:
    key = ccapi(core.env, "keys", "create", "--name", "attach-other").strip().splitlines()[-1]
    client = openai.OpenAI(base_url=facade.base_url + "/v1", api_key=key, max_retries=0)
    yield client
    client.close()


def run_grpc(core: CoreProcess, request: pb.RunTurnRequest) -> list[pb.RunTurnResponse]:
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        return list(stub.RunTurn(request, metadata=core.metadata(), timeout=90))


def completed_of(replies: list[pb.RunTurnResponse]) -> ev.TurnCompleted:
    return next(r.completed for r in replies if r.WhichOneof("event") == "completed")


def grpc_message(*parts: cpb.ContentPart, text: str = "Go.") -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text=text), *parts])


def test_the_agent_cats_an_attached_csv(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(
        Reply.tool_use("Bash", {"command": "cat stock.csv", "description": "show the csv"}),
        Reply.echo_tool_results("{text}"),
    )
    done = sdk.chat.completions.create(
        model=MODEL,
        messages=[user(file_part("stock.csv", CSV))],  # type: ignore[list-item]
    )
    assert done.choices[0].message.content == CSV.decode().strip()
    # The model was told which file was attached and where.
    told = model_double.main_requests[0].last_user_text
    assert f"[Attached file: stock.csv (text/csv, {len(CSV)} bytes)" in told
    assert "./stock.csv" in told


def test_attached_files_are_not_the_agents_but_its_edits_are(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Bash", {"command": "echo 'washers,5' >> stock.csv", "description": "add"}),
        Reply.text("Added."),
    )
    part = cpb.ContentPart(file=cpb.Attachment(filename="stock.csv", data=CSV))
    done = completed_of(
        run_grpc(core, pb.RunTurnRequest(model=MODEL, messages=[grpc_message(part)]))
    )
    # Only the agent's change, as a modification of the attached file.
    assert [(f.path, f.kind) for f in done.files] == [("stock.csv", ev.FILE_CHANGE_KIND_MODIFIED)]
    assert "+washers,5" in done.files[0].diff


def test_a_pdf_and_an_image_reach_claude_code(
    sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_uses(
            [("Read", {"file_path": "{cwd}/report.pdf"}), ("Read", {"file_path": "{cwd}/dot.png"})]
        ),
        Reply.text("Seen both."),
    )
    done = sdk.responses.create(
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Read both."},
                    {
                        "type": "input_file",
                        "filename": "report.pdf",
                        "file_data": data_url("application/pdf", tiny_pdf()),
                    },
                    {
                        "type": "input_file",
                        "filename": "dot.png",
                        "file_data": data_url("image/png", tiny_png()),
                    },
                ],
            }
        ],
    )
    assert done.output_text == "Seen both."
    results = model_double.main_requests[1].last_tool_results
    kinds: set[Any] = set()
    for result in results:
        content = result.get("content")
        if isinstance(content, list):
            kinds |= {block.get("type") for block in content if isinstance(block, dict)}
    assert {"document", "image"} <= kinds, results
    assert not any(r.get("is_error") for r in results), results


def test_upload_once_use_in_two_conversations(
    sdk: openai.OpenAI, other_sdk: openai.OpenAI, model_double: ModelDouble
) -> None:
    uploaded = sdk.files.create(
        file=("prices.csv", b"item,price\ntea,3\n", "text/csv"), purpose="user_data"
    )
    for question in ("First conversation.", "Second conversation."):
        model_double.script(
            Reply.tool_use("Bash", {"command": "cat prices.csv", "description": "show"}),
            Reply.echo_tool_results("{text}"),
        )
        done = sdk.chat.completions.create(
            model=MODEL,
            messages=[user({"type": "file", "file": {"file_id": uploaded.id}}, text=question)],  # type: ignore[list-item]
        )
        assert done.choices[0].message.content == "item,price\ntea,3"
    # Another key cannot use it: as unknown as a file that never existed.
    with pytest.raises(openai.NotFoundError) as missing:
        other_sdk.chat.completions.create(
            model=MODEL,
            messages=[user({"type": "file", "file": {"file_id": uploaded.id}})],  # type: ignore[list-item]
        )
    body: Any = missing.value.body
    assert body["param"] == "messages[0].content[1].file.file_id"
    assert uploaded.id in body["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        other_sdk.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_file", "file_id": uploaded.id}]}],
        )
    assert missing.value.body["param"] == "input[0].content[0].file_id"  # type: ignore[index]


def _chat_error(facade: Facade, core: CoreProcess, *parts: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        facade.base_url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [user(*parts)]},
        timeout=60,
        headers={"Authorization": f"Bearer {core.api_key}"},
    )


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "file", "file": {"file_id": "file-doesnotexist"}},
            "messages[0].content[1].file.file_id",
        ),
        (
            {
                "type": "file",
                "file": {"file_data": "data:text/csv;base64,@@@", "filename": "a.csv"},
            },
            "messages[0].content[1].file.file_data",
        ),
        (file_part("../escape.csv", CSV), "messages[0].content[1].file.filename"),
        (file_part("dir/inner.csv", CSV), "messages[0].content[1].file.filename"),
        (file_part("nul\x00.csv", CSV), "messages[0].content[1].file.filename"),
        (file_part("CLAUDE.md", CSV), "messages[0].content[1].file.filename"),
        (file_part(".claude", CSV), "messages[0].content[1].file.filename"),
        (
            {"type": "file", "file": {"file_data": data_url("text/csv", CSV)}},
            "messages[0].content[1].file.filename",
        ),
    ],
)
def test_bad_attachments_are_refused_by_name(
    facade: Facade, core: CoreProcess, part: dict[str, Any], param: str
) -> None:
    refused = _chat_error(facade, core, part)
    assert refused.status_code in (400, 404), refused.text
    error = refused.json()["error"]
    assert error["param"] == param, error
    assert refused.status_code == (404 if "file_id" in param else 400)


def _set_max_file_bytes(core: CoreProcess, value: int) -> None:
    with core.channel() as channel:
        admin_pb2_grpc.AdminServiceStub(channel).UpdateConfig(
            admin_pb2.UpdateConfigRequest(
                config=admin_pb2.LiveConfig(max_file_bytes=value),
                update_mask=field_mask_pb2.FieldMask(paths=["max_file_bytes"]),
            ),
            metadata=core.admin_metadata(),
        )


def test_too_large_and_too_many(facade: Facade, core: CoreProcess) -> None:
    with core.channel() as channel:
        before = admin_pb2_grpc.AdminServiceStub(channel).GetConfig(
            admin_pb2.GetConfigRequest(), metadata=core.admin_metadata()
        )
    _set_max_file_bytes(core, 1024)
    try:
        big = _chat_error(facade, core, file_part("big.csv", CSV * 100))
    finally:
        _set_max_file_bytes(core, before.config.max_file_bytes)
    assert big.status_code == 413, big.text
    assert big.json()["error"]["param"] == "messages[0].content[1].file.file_data"
    many = _chat_error(facade, core, *(file_part(f"f{n}.csv", CSV) for n in range(21)))
    assert many.status_code == 400
    assert many.json()["error"]["param"] == "messages[0].content[21].file"
    twice = _chat_error(facade, core, file_part("a.csv", CSV), file_part("a.csv", CSV))
    assert twice.status_code == 400


def test_nothing_is_half_written(core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.script(Reply.text("Hello."))
    first = run_grpc(core, pb.RunTurnRequest(model=MODEL, messages=[grpc_message()]))
    session = completed_of(first).session_id
    good = cpb.ContentPart(file=cpb.Attachment(filename="good.csv", data=CSV))
    bad = cpb.ContentPart(file=cpb.Attachment(filename="../bad.csv", data=CSV))
    with pytest.raises(Exception) as refused:
        run_grpc(
            core,
            pb.RunTurnRequest(model=MODEL, session_id=session, messages=[grpc_message(good, bad)]),
        )
    assert "plain file name" in str(refused.value)
    model_double.script(
        Reply.tool_use("Bash", {"command": "ls -a", "description": "list"}),
        Reply.echo_tool_results("{text}"),
    )
    listing = completed_of(
        run_grpc(
            core, pb.RunTurnRequest(model=MODEL, session_id=session, messages=[grpc_message()])
        )
    )
    assert listing.session_id == session
    assert "good.csv" not in listing.text and ".ccapi-attach" not in listing.text
