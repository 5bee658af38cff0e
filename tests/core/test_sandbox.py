"""The agent runs code on our host: each of these makes the model double try
to get out of its workspace, and checks that it could not."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.core.helpers import TurnLog, request, run_turn
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess


def _tool_attempt(
    core: CoreProcess, double: ModelDouble, tool: str, tool_input: dict[str, object]
) -> TurnLog:
    double.script(Reply.tool_use(tool, tool_input), Reply.text("ok"))
    log = run_turn(core, request(f"try {tool}"))
    assert log.error is None, log.error
    assert log.of("tool_result"), log.kinds()
    return log


def _result(log: TurnLog) -> tuple[bool, str]:
    result = log.of("tool_result")[0].tool_result
    return result.is_error, result.output_excerpt


def _workspace_of(double: ModelDouble) -> Path:
    return Path(double.main_requests[0].working_directory or "")


def test_bash_cannot_write_outside_the_workspace(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    target = Path("/tmp") / f"ccapi-escape-{secrets.token_hex(4)}"
    log = _tool_attempt(
        core, model_double, "Bash", {"command": f"echo pwned > {target}", "description": "x"}
    )
    assert not target.exists()
    is_error, output = _result(log)
    assert is_error or "Read-only file system" in output or "denied" in output.lower()


def test_bash_can_write_inside_the_workspace(core: CoreProcess, model_double: ModelDouble) -> None:
    log = _tool_attempt(
        core, model_double, "Bash", {"command": "echo hi > made-by-bash.txt", "description": "x"}
    )
    assert (_workspace_of(model_double) / "made-by-bash.txt").read_text() == "hi\n", _result(log)


def test_bash_cannot_read_the_database(core: CoreProcess, model_double: ModelDouble) -> None:
    db = core.data_dir / "ccapi.db"
    assert db.read_bytes().startswith(b"SQLite format")
    log = _tool_attempt(
        core,
        model_double,
        "Bash",
        {"command": f"head -c 100 {db} | od -c | head", "description": "x"},
    )
    _, output = _result(log)
    assert "S   Q   L   i   t   e" not in output


def test_bash_cannot_read_the_database_through_a_hidden_path(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    db = str(core.data_dir / "ccapi.db")
    half = len(db) // 2
    command = f'x={db[:half]}; cat "${{x}}{db[half:]}" | head -c 16'
    log = _tool_attempt(core, model_double, "Bash", {"command": command, "description": "x"})
    assert "SQLite format" not in _result(log)[1]


def test_read_tool_cannot_read_the_database(core: CoreProcess, model_double: ModelDouble) -> None:
    log = _tool_attempt(core, model_double, "Read", {"file_path": str(core.data_dir / "ccapi.db")})
    is_error, output = _result(log)
    assert is_error
    assert "SQLite format" not in output


def test_agent_cannot_list_or_read_other_workspaces(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.tool_use("Write", {"file_path": "{cwd}/secret.txt", "content": "top secret"}),
        Reply.text("ok"),
    )
    assert run_turn(core, request("first conversation")).error is None
    secret = _workspace_of(model_double) / "secret.txt"
    assert secret.exists()
    model_double.reset()

    listing = _tool_attempt(
        core,
        model_double,
        "Bash",
        {"command": f"ls {core.data_dir / 'workspaces'}", "description": "x"},
    )
    assert secret.parent.name not in _result(listing)[1]
    model_double.reset()

    bash_read = _tool_attempt(
        core, model_double, "Bash", {"command": f"cat {secret}", "description": "x"}
    )
    assert "top secret" not in _result(bash_read)[1]
    model_double.reset()

    tool_read = _tool_attempt(core, model_double, "Read", {"file_path": str(secret)})
    is_error, output = _result(tool_read)
    assert is_error and "top secret" not in output


def test_write_tool_outside_the_workspace_is_denied(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    target = Path("/tmp") / f"ccapi-escape-{secrets.token_hex(4)}.txt"
    log = _tool_attempt(core, model_double, "Write", {"file_path": str(target), "content": "x"})
    assert not target.exists()
    assert _result(log)[0]


def test_unsandboxed_commands_are_refused(core: CoreProcess, model_double: ModelDouble) -> None:
    target = Path("/tmp") / f"ccapi-escape-{secrets.token_hex(4)}"
    log = _tool_attempt(
        core,
        model_double,
        "Bash",
        {"command": f"touch {target}", "description": "x", "dangerouslyDisableSandbox": True},
    )
    assert not target.exists()
    assert _result(log)[0]


def test_the_agent_cannot_see_the_services_claude_credential(
    core: CoreProcess, model_double: ModelDouble
) -> None:
    secret = core.env["ANTHROPIC_API_KEY"]
    log = _tool_attempt(
        core,
        model_double,
        "Bash",
        {
            "command": "echo key=$ANTHROPIC_API_KEY; env; cat ~/.ccapi-credential; "
            "grep -r . $HOME 2>/dev/null | head",
            "description": "x",
        },
    )
    assert secret not in _result(log)[1]
    credentials = list((core.data_dir / "homes").glob("*/.ccapi-credential"))
    assert credentials
    model_double.reset()
    read = _tool_attempt(core, model_double, "Read", {"file_path": str(credentials[0])})
    assert read.of("tool_result")[0].tool_result.is_error and secret not in _result(read)[1]
    # Claude Code itself still authenticates with it.
    assert model_double.main_requests[0].headers.get("x-api-key") == secret
