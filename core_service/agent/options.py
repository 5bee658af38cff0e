"""ClaudeAgentOptions for one conversation: sandbox on, our permission
callback, confined directories, a scrubbed environment."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from claude_agent_sdk import ClaudeAgentOptions, HookMatcher
from claude_agent_sdk.types import SystemPromptPreset

from core_service.agent.client_tools import ClientToolServer, ClientToolSet, client_tool_options
from core_service.agent.permissions import (
    ALLOWED_BY_DEFAULT,
    foreground_hook,
    make_permission_callback,
)
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
    # Claude Code's `output_format` as canonical JSON ("" for free text; see
    # agent.structured_output.shape_value): fixed per process, like the tools.
    output_format: str = ""
    # The request's own tools (None: none). Compared by `client_tools_key`:
    # Claude Code lists a process's tools once, at its start.
    client_tools: ClientToolSet | None = field(default=None, compare=False)
    client_tools_key: str = ""
    # With client tools: the built-ins offered beside them (True: all the key allows).
    builtin_tools: bool | tuple[str, ...] = False


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
    # Claude Code's running cost total of the session resumed (or forked
    # from), which it restores; the first turn's cost is counted from it.
    reported_cost_usd: float = 0.0


def denied_paths(config: CoreConfig, homes_roots: Sequence[Path] = ()) -> list[str]:
    """Absolute paths of service data the agent must never read or change
    (`homes_roots`: folders of homes besides the configured one)."""
    homes = dict.fromkeys([config.homes_dir, *homes_roots])
    paths = [f"{folder}/**" for folder in homes]
    # Uploaded files of every key (file_store.py): a conversation gets only the
    # ones attached to it, copied into its workspace.
    paths.append(f"{config.data_dir.resolve()}/files/**")
    if config.database_url.startswith("sqlite"):
        db = config.database_url.split(":///", 1)[-1]
        paths += [db, f"{db}-wal", f"{db}-shm", f"{db}-journal"]
    return paths


# The credential Claude Code reads through its apiKeyHelper, in the
# conversation's home: Claude Code itself can read it, but the home is denied
# to tools and sandboxed commands, so the agent cannot.
CREDENTIAL_FILE = ".ccapi-credential"
# Credentials that go through the helper instead of the environment, where
# every command the agent runs would see them.
HELPER_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def helper_credential(config: CoreConfig) -> str:
    return next((config.claude_env[n] for n in HELPER_CREDENTIALS if config.claude_env.get(n)), "")


def write_credential(config: CoreConfig, home: Path, uid: int | None) -> Path | None:
    """Puts the service's Claude credential where only Claude Code reads it."""
    secret = helper_credential(config)
    if not secret:
        return None
    path = home / CREDENTIAL_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    if uid is not None:
        os.chown(path, uid, 0)
    return path


def settings_json(
    config: CoreConfig, credential: Path | None = None, homes_roots: Sequence[Path] = ()
) -> str:
    deny: list[str] = []
    for path in denied_paths(config, homes_roots):
        # "//" marks an absolute path in Claude Code permission rules.
        rule_path = "/" + path if path.startswith("/") else path
        deny += [f"Read({rule_path})", f"Edit({rule_path})"]
    settings: dict[str, object] = {"permissions": {"deny": deny}}
    if credential is not None:
        settings["apiKeyHelper"] = f"cat {shlex.quote(str(credential))}"
    return json.dumps(settings)


def agent_env(
    config: CoreConfig, home: Path, shape: ProcessShape, max_retries: int
) -> dict[str, str]:
    env = {name: "" for name in os.environ if name not in INHERITED_ENV}
    env.update(config.claude_env)
    for name in HELPER_CREDENTIALS:
        env[name] = ""  # read through apiKeyHelper instead (see settings_json)
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
    cli_path: Path | None = None,
    homes_roots: Sequence[Path] = (),
    client_tools: ClientToolServer | None = None,
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
        can_use_tool=make_permission_callback(
            workspace,
            shape.allowed_tools,
            config.agent_network_hosts,
            client_tools.tool_set.names if client_tools is not None else (),
        ),
        # Every tool call, also those Claude Code would allow by itself.
        hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[foreground_hook])]},
        sandbox={
            "enabled": True,
            "autoAllowBashIfSandboxed": False,
            "allowUnsandboxedCommands": False,
        },
        settings=settings_json(config, write_credential(config, home, uid), homes_roots),
        # Ignore settings files on disk: the agent could write one into its workspace.
        setting_sources=[],
        env=agent_env(config, home, shape, max_retries),
        # A uid, not a name: subprocess takes either, and these uids have no passwd entry.
        user=uid,  # type: ignore[arg-type]
        cli_path=cli_path,
        stderr=stderr,
    )
    # The model is only offered tools it may use; the callback still checks each use.
    offered = ALLOWED_BY_DEFAULT if shape.allowed_tools is None else set(shape.allowed_tools)
    options.tools = sorted(offered & ALLOWED_BY_DEFAULT)
    if shape.output_format:
        options.output_format = json.loads(shape.output_format)
    if client_tools is not None:
        # The client orchestrates: its tools, and only the built-ins it opted in to.
        builtin = shape.builtin_tools
        pieces = client_tool_options(
            client_tools, builtin if isinstance(builtin, bool) else list(builtin), options.tools
        )
        options.tools = pieces.tools
        options.mcp_servers = dict(pieces.mcp_servers)
        options.env = {**options.env, **pieces.env}
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
