"""ClaudeAgentOptions for one conversation: sandbox on, our permission
callback, confined directories, a scrubbed environment."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import SystemPromptPreset

from core_service.agent.permissions import make_permission_callback
from core_service.config import CoreConfig

# Variables the agent's processes may see from our environment; everything
# else (database URLs, admin tokens, ...) is blanked out.
INHERITED_ENV = frozenset({"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR"})


@dataclass(frozen=True)
class ProcessShape:
    """What is fixed when a Claude Code process starts; a turn that needs a
    different shape gets a new process (resuming the same session)."""

    model: str
    system_append: str = ""
    max_output_tokens: int = 0
    effort: str = ""
    allowed_tools: tuple[str, ...] | None = None


def same_process(a: ProcessShape, b: ProcessShape) -> bool:
    """True when a process started with shape `a` can run a turn that needs `b`
    (the model is the one thing a running process can switch)."""
    return dataclasses.replace(a, model=b.model) == b


@dataclass(frozen=True)
class SessionStart:
    """How the process joins its session."""

    session_id: str
    # True: continue an existing transcript; False: start with this id.
    resume: bool = False
    # Set when forking: the session whose transcript we branch from.
    fork_from: str | None = None
    # With fork_from: the Claude Code message uuid to cut the history at.
    resume_at: str | None = None


def denied_paths(config: CoreConfig) -> list[str]:
    """Absolute paths of service data the agent must never read or change."""
    paths = [f"{config.homes_dir}/**"]
    if config.database_url.startswith("sqlite"):
        db = config.database_url.split(":///", 1)[-1]
        paths += [db, f"{db}-wal", f"{db}-shm", f"{db}-journal"]
    return paths


def settings_json(config: CoreConfig) -> str:
    deny: list[str] = []
    for path in denied_paths(config):
        # "//" marks an absolute path in Claude Code permission rules.
        rule_path = "/" + path if path.startswith("/") else path
        deny += [f"Read({rule_path})", f"Edit({rule_path})"]
    return json.dumps({"permissions": {"deny": deny}})


def agent_env(
    config: CoreConfig, home: Path, shape: ProcessShape, max_retries: int
) -> dict[str, str]:
    env = {name: "" for name in os.environ if name not in INHERITED_ENV}
    env.update(config.claude_env)
    env.update(
        {
            "HOME": str(home),
            "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
    )
    if shape.max_output_tokens > 0:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(shape.max_output_tokens)
    return env


def build_options(
    config: CoreConfig,
    workspace: Path,
    home: Path,
    uid: int | None,
    max_retries: int,
    shape: ProcessShape,
    start: SessionStart,
    stderr: Callable[[str], None] | None = None,
) -> ClaudeAgentOptions:
    system_prompt: SystemPromptPreset = {"type": "preset", "preset": "claude_code"}
    if shape.system_append:
        system_prompt["append"] = shape.system_append
    options = ClaudeAgentOptions(
        cwd=str(workspace),
        model=shape.model,
        system_prompt=system_prompt,
        include_partial_messages=True,
        permission_mode="default",
        can_use_tool=make_permission_callback(workspace, shape.allowed_tools),
        sandbox={
            "enabled": True,
            "autoAllowBashIfSandboxed": False,
            "allowUnsandboxedCommands": False,
        },
        settings=settings_json(config),
        # Ignore settings files on disk: the agent could write one into its workspace.
        setting_sources=[],
        env=agent_env(config, home, shape, max_retries),
        # A uid, not a name: subprocess takes either, and these uids have no passwd entry.
        user=uid,  # type: ignore[arg-type]
        stderr=stderr,
    )
    if shape.allowed_tools is not None:
        # The model is only offered the key's tools; the callback still checks each use.
        options.tools = list(shape.allowed_tools)
    if shape.effort:
        options.effort = shape.effort  # type: ignore[assignment]
    if start.fork_from:
        options.resume = start.fork_from
        options.fork_session = True
        options.session_id = start.session_id
        options.resume_session_at = start.resume_at
    elif start.resume:
        options.resume = start.session_id
    else:
        options.session_id = start.session_id
    return options
