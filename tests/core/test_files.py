"""Every turn reports what changed in its workspace, however it changed."""

from __future__ import annotations

import time
from pathlib import Path

from claudecode.v1 import events_pb2 as ev
from tests.core.helpers import TurnLog, request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess


def _files(log: TurnLog) -> dict[str, ev.FileChange]:
    assert log.error is None, log.error
    return {f.path: f for f in log.of("completed")[0].completed.files}


def _streamed(log: TurnLog) -> list[str]:
    return [e.file_change.path for e in log.of("file_change")]


def test_write_then_edit_then_bash_changes_are_reported(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/app.py", "content": "print('v1')\n"}),
        Reply.text("created"),
    )
    first = run_turn(core, request("create app.py"))
    files = _files(first)
    assert files["app.py"].kind == ev.FILE_CHANGE_KIND_CREATED
    assert "+print('v1')" in files["app.py"].diff
    assert files["app.py"].size_bytes == len("print('v1')\n")
    assert _streamed(first) == ["app.py"]
    assert first.kinds().index("file_change") < first.kinds().index("completed")
    session_id = first.started.started.session_id

    model_double.script(
        Reply.tool_use(
            "Edit", {"file_path": "{cwd}/app.py", "old_string": "v1", "new_string": "v2"}
        ),
        Reply.text("edited"),
    )
    second = _files(run_turn(core, request("edit it", session_id=session_id)))
    assert second["app.py"].kind == ev.FILE_CHANGE_KIND_MODIFIED
    assert "-print('v1')" in second["app.py"].diff and "+print('v2')" in second["app.py"].diff

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
    third = _files(run_turn(core, request("shuffle", session_id=session_id)))
    assert third["app.py"].kind == ev.FILE_CHANGE_KIND_DELETED
    assert third["notes.txt"].kind == ev.FILE_CHANGE_KIND_CREATED
    assert third["blob.bin"].binary and third["blob.bin"].diff == ""


def test_long_diffs_are_cut_with_a_note(core: CoreProcess, model_double: ModelDouble) -> None:
    content = "".join(f"line {i} of a long generated file\n" for i in range(5000))
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/big.txt", "content": content}),
        Reply.text("done"),
    )
    change = _files(run_turn(core, request("big file")))["big.txt"]
    assert change.diff_truncated
    assert len(change.diff) < len(content)
    assert "diff cut" in change.diff


def test_reading_the_workspace_for_the_report_is_bounded(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    """300 sparse 64 MB files made one turn hash 19 GB as root (90 s); large,
    sparse and over-budget files are now compared by size and time, and say so."""
    model_double.script(
        Reply.tool_use(
            "Bash",
            {
                "command": "for i in $(seq 300); do truncate -s 64M f$i; done; "
                "truncate -s 4M sparse.bin; head -c 9000000 /dev/urandom > big.bin; "
                "echo small > small.txt",
                "description": "make files",
            },
        ),
        Reply.text("made"),
    )
    started = time.monotonic()
    files = _files(run_turn(core, request("make files")))
    assert time.monotonic() - started < 30
    assert len([p for p in files if p.startswith("f")]) == 300
    assert "content not compared: larger than" in files["f1"].diff
    assert files["f1"].diff_truncated and files["f1"].size_bytes == 64 * 1024 * 1024
    assert "content not compared: a sparse file" in files["sparse.bin"].diff
    assert "content not compared: larger than" in files["big.bin"].diff
    assert "+small" in files["small.txt"].diff


def test_a_turn_reads_no_more_than_its_budget(tmp_path: Path) -> None:
    from core_service.file_changes import FileTracker, ScanBudget

    tracker = FileTracker(tmp_path, 20_000, ScanBudget(bytes_left=1000))
    tracker.begin()
    (tmp_path / "a.txt").write_text("a" * 600 + "\n")
    (tmp_path / "b.txt").write_text("b" * 600 + "\n")
    changed = {c.path: c for c in tracker.step()}
    assert "+aaa" in changed["a.txt"].diff
    assert "read budget" in changed["b.txt"].diff and changed["b.txt"].diff_truncated
    assert {c.path for c in tracker.total()} == {"a.txt", "b.txt"}
