"""Every turn reports what changed in its workspace, however it changed."""

from __future__ import annotations

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
