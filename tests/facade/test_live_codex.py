"""Live: the unmodified Codex CLI (npm @openai/codex) against the facade's
Responses API, over HTTP and over its WebSocket mode: it runs its shell tool and
its apply_patch tool on its own side, and the files appear in Codex's working
directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, start_core

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "codex"
# A model name Codex knows: only then does it offer apply_patch (see README).
CODEX_MODEL = "gpt-5.5"
PATCH = "*** Begin Patch\n*** Add File: patched.txt\n+written by apply_patch\n*** End Patch\n"


def _codex() -> Path:
    binary = TOOLS / "node_modules" / ".bin" / "codex"
    if shutil.which("npm") is None:
        pytest.skip("npm not installed: the Codex CLI test needs it")
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--prefix",
                str(TOOLS),
                "@openai/codex@0.171",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install @openai/codex failed: {done.stderr[-500:]}")
    return binary


@pytest.fixture(scope="module")
def aliased(
    model_double: ModelDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CoreProcess, Facade]]:
    core = start_core(model_double.url, CCAPI_MODEL_ALIASES=f"{CODEX_MODEL}=sonnet")
    facade = start_facade(core.addr, tmp_path_factory.mktemp("codex") / "gunicorn.log", workers=1)
    yield core, facade
    facade.stop()
    core.cleanup()


def _run_codex(
    core: CoreProcess, facade: Facade, model_double: ModelDouble, tmp_path: Path, websockets: bool
) -> None:
    """Codex, asked to make two files, makes one with its shell tool and one with
    apply_patch (the model double scripts both calls) and ends with the answer."""
    codex = _codex()
    model_double.script(
        Reply.call_tools([("exec_command", {"cmd": "echo made-by-shell > shell.txt"})]),
        Reply.call_tools([("apply_patch", {"input": PATCH})]),
        Reply.text("All done."),
    )
    home, project = tmp_path / "codex-home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text(
        f'model = "{CODEX_MODEL}"\n'
        'model_provider = "claudecode"\n'
        "[model_providers.claudecode]\n"
        'name = "claudecode-api"\n'
        f'base_url = "{facade.base_url}/v1"\n'
        'env_key = "CCAPI_KEY"\n'
        'wire_api = "responses"\n'
        f"supports_websockets = {str(websockets).lower()}\n"
    )
    done = subprocess.run(
        # Codex's own sandbox needs kernel features a test container may lack;
        # the commands run in this test's temporary project directory.
        [
            str(codex),
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "make the two files",
        ],
        cwd=project,
        env={**os.environ, "CODEX_HOME": str(home), "CCAPI_KEY": core.api_key},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (project / "shell.txt").read_text().strip() == "made-by-shell"
    assert (project / "patched.txt").read_text() == "written by apply_patch\n"
    assert "All done." in done.stdout


def test_codex_runs_its_shell_and_apply_patch_tools_on_its_side(
    aliased: tuple[CoreProcess, Facade], model_double: ModelDouble, tmp_path: Path
) -> None:
    core, facade = aliased
    _run_codex(core, facade, model_double, tmp_path, websockets=False)

    # Codex offered its tools under its own names, apply_patch among them.
    offered = set(model_double.main_requests[0].offered_tools)
    assert {"exec_command", "apply_patch"} <= offered
    # Nothing ran in the service's workspace.
    workspace = Path(model_double.main_requests[0].working_directory or "")
    assert not (workspace / "shell.txt").exists()


def test_codex_runs_its_turns_over_the_socket(
    aliased: tuple[CoreProcess, Facade], model_double: ModelDouble, tmp_path: Path
) -> None:
    core, facade = aliased
    before = len(facade.log.read_text().splitlines())
    _run_codex(core, facade, model_double, tmp_path, websockets=True)

    # This run's access lines (JSON, like every server log line).
    access = [
        json.loads(line)["msg"]
        for line in facade.log.read_text().splitlines()[before:]
        if line.startswith("{") and '"logger": "uvicorn' in line
    ]
    assert any('"WebSocket /v1/responses" [accepted]' in msg for msg in access), access
    assert not any("POST /v1/responses" in msg for msg in access)  # no turn fell back to HTTP
