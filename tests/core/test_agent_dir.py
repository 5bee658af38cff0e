"""Where conversations' folders live is decided once, at the first start, and
recorded in the data dir; a session is found wherever it was created."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from claudecode.v1 import sessions_pb2, sessions_pb2_grpc
from core_service.config import AGENT_DIR_RECORD, FALLBACK_AGENT_ROOT, fallback_agent_dir
from tests.core.helpers import request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, make_data_dir, start_core


def _write_hello(core: CoreProcess, double: ModelDouble) -> tuple[str, Path]:
    double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/hello.txt", "content": "hi"}),
        Reply.text("done"),
    )
    log = run_turn(core, request("write hello.txt"))
    assert log.error is None, log.error
    return log.started.started.session_id, Path(double.main_requests[-2].working_directory or "")


def _resumes(core: CoreProcess, double: ModelDouble, session_id: str, key: str) -> Path:
    """Runs a turn in the session and lists its files; returns its workspace."""
    double.reset()
    double.script(Reply.text("still here"))
    log = run_turn(core, request("again", session_id=session_id), key=key)
    assert log.error is None, log.error
    with core.channel() as channel:
        files = sessions_pb2_grpc.SessionServiceStub(channel).ListSessionFiles(
            sessions_pb2.ListSessionFilesRequest(session_id=session_id),
            metadata=core.metadata(key),
        )
    assert [f.path for f in files.files] == ["hello.txt"]
    return Path(double.main_requests[-1].working_directory or "")


def test_the_first_start_on_a_new_data_dir_decides_where_workspaces_go_for_good(
    model_double: ModelDouble,
) -> None:
    """`ccapi` commands create the data dir 0700 before the core starts: the first
    core put workspaces in /var/lib/ccapi/agents/<hash>, the next (the data dir
    now 0711) looked for them in the data dir: 503 on resume, 500 on /files."""
    folder = make_data_dir()
    data_dir = folder / "data"  # made by `ccapi keys create`, under umask 077
    core = start_core(model_double.url, data_dir=data_dir)
    try:
        assert (data_dir.stat().st_mode & 0o777) in (0o700, 0o711)
        session_id, workspace = _write_hello(core, model_double)
        assert workspace.is_relative_to(data_dir), workspace
        assert (data_dir / AGENT_DIR_RECORD).read_text().splitlines()[0] == str(data_dir)
        core.stop()
        key, core = core.api_key, start_core(model_double.url, data_dir=data_dir)
        assert _resumes(core, model_double, session_id, key) == workspace
    finally:
        core.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(fallback_agent_dir(data_dir), ignore_errors=True)


def test_a_session_made_before_the_record_is_found_where_it_was_made(
    model_double: ModelDouble,
) -> None:
    """Rows from a release without the record: the session's folders are in the
    fallback root, and a restart would now choose the data dir."""
    private = Path(tempfile.mkdtemp(prefix="ccapi-private-"))  # 0700: fallback root
    data_dir = private / "data"
    data_dir.mkdir()
    core = start_core(model_double.url, data_dir=data_dir)
    try:
        session_id, workspace = _write_hello(core, model_double)
        assert workspace.is_relative_to(FALLBACK_AGENT_ROOT)
        core.stop()
        (data_dir / AGENT_DIR_RECORD).unlink()  # as an older release left it
        os.chmod(private, 0o711)  # a fresh decision now picks the data dir
        key, core = core.api_key, start_core(model_double.url, data_dir=data_dir)
        assert _resumes(core, model_double, session_id, key) == workspace
        model_double.reset()
        _, new_workspace = _write_hello(core, model_double)
        assert new_workspace.is_relative_to(data_dir)
    finally:
        core.cleanup()
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(fallback_agent_dir(data_dir), ignore_errors=True)
