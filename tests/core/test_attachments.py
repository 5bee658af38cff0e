"""Attachments written into a workspace (core_service/turns/attachments.py),
without a core: names, links, all-or-nothing, and the prompt's notice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claudecode.v1 import content_pb2 as cpb
from core_service.errors import FailedPrecondition, InvalidArgument
from core_service.turns import attachments
from core_service.turns.attachments import Attached


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "nul\x00.txt",
        "tab\t.txt",
        "CLAUDE.md",
        ".claude",
        ".git",
        "CON",
        "com1.txt",
        " lead.txt",
        "trail.",
        ".ccapi-attach-x",
        "x" * 256,
    ],
)
def test_bad_names_are_refused_not_rewritten(name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        attachments.check_name(name, "messages[0].content[1].file.filename")
    assert refused.value.param == "messages[0].content[1].file.filename"


@pytest.mark.parametrize("name", ["stock.csv", "Report 2026.pdf", ".env", "ü.txt", "a.b.c"])
def test_plain_names_pass(name: str) -> None:
    assert attachments.check_name(name, "p") == name


def test_a_link_in_the_workspace_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stock.csv").symlink_to(outside)
    attachments.write(workspace, None, [Attached("stock.csv", b"a,b\n", "text/csv")])
    assert outside.read_text() == "keep me"
    assert not (workspace / "stock.csv").is_symlink()
    assert (workspace / "stock.csv").read_bytes() == b"a,b\n"


def test_nothing_is_half_written(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    # A folder of the second name: refused before the first is written.
    (workspace / "second.txt").mkdir()
    (workspace / "second.txt" / "inside").write_text("x")
    files = [Attached("first.txt", b"1", ""), Attached("second.txt", b"2", "")]
    with pytest.raises(FailedPrecondition):
        attachments.write(workspace, None, files)
    assert sorted(os.listdir(workspace)) == ["second.txt"]
    assert (workspace / "second.txt").is_dir()


def test_the_prompt_names_each_file_in_place() -> None:
    content = [
        cpb.ContentPart(text="Look:"),
        cpb.ContentPart(file=cpb.Attachment(filename="a.csv", data=b"x")),
        cpb.ContentPart(text="and"),
        cpb.ContentPart(file=cpb.Attachment(file_id="file-1")),
    ]
    files = [Attached("a.csv", b"x", "text/csv"), Attached("b.pdf", b"yy", "", "file-1")]
    out = attachments.prompt_content(content, files)
    assert [p.WhichOneof("part") for p in out] == ["text"] * 4
    assert out[1].text == (
        "[Attached file: a.csv (text/csv, 1 bytes), saved in the working directory as ./a.csv]"
    )
    assert "./b.pdf" in out[3].text


def test_only_the_new_turns_messages_count() -> None:
    def user(name: str) -> cpb.Message:
        part = cpb.ContentPart(file=cpb.Attachment(filename=name, data=b"x"))
        return cpb.Message(role=cpb.ROLE_USER, content=[cpb.ContentPart(text="hi"), part])

    messages = [
        user("old.txt"),
        cpb.Message(role=cpb.ROLE_ASSISTANT, content=[cpb.ContentPart(text="ok")]),
        user("new1.txt"),
        cpb.Message(role=cpb.ROLE_SYSTEM, content=[cpb.ContentPart(text="sys")]),
        user("new2.txt"),
    ]
    found = attachments.new_turn_parts(messages)
    assert [(param, part.filename) for param, part in found] == [
        ("messages[2].content[1].file", "new1.txt"),
        ("messages[4].content[1].file", "new2.txt"),
    ]
