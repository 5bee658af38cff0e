"""The permission callback: our code, not a bypass mode, decides each tool use.

Claude Code asks this callback before any tool use its own rules do not settle
(our settings leave all of them to us). Only tools this service knows are
allowed: file tools confined to the conversation's workspace, Bash inside the
bubblewrap sandbox, which may not be left; network access from sandboxed
commands only to hosts the operator listed (never loopback or private
addresses); anything unknown is refused.

Nothing runs in the background. An API turn ends with its answer; a command
or subagent left running would finish between turns, and Claude Code would
then ask the model on its own, with no turn open to take the answer (the next
turn would get it, and every later one the previous one's). So tool inputs
that start background work are refused with a note to run it in the
foreground, and a subagent runs in the foreground unless the model asks
otherwise (then it is refused too). Claude Code settles some commands on its
own (`sleep 8; echo x` counts as read-only) and never asks the callback about
them, so the same rule also runs as a PreToolUse hook, which sees every call.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    HookContext,
    HookInput,
    HookJSONOutput,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)

from core_service.agent.client_tools import tool_name_from_cli

PermissionResult = PermissionResultAllow | PermissionResultDeny
PermissionCallback = Callable[
    [str, dict[str, Any], ToolPermissionContext], Awaitable[PermissionResult]
]

# Input fields that name a file or folder, per tool.
PATH_FIELDS = ("file_path", "notebook_path", "path")
# Glob patterns may be absolute too.
PATTERN_FIELDS = ("pattern", "glob")
# Tools a conversation may use unless its key narrows them. Everything else
# (scheduling, worktrees outside the workspace, asking a user who is not
# there, fetching from our host's network) is refused, including tools a newer
# Claude Code adds until someone decides about them.
ALLOWED_BY_DEFAULT = frozenset(
    {
        "Read",
        "Write",
        "Edit",
        "MultiEdit",
        "NotebookEdit",
        "Glob",
        "Grep",
        "LS",
        "Bash",
        "BashOutput",
        "KillBash",
        "KillShell",
        "TodoWrite",
        "Task",
        "Agent",
        "ListAgents",
        "TaskCreate",
        "TaskGet",
        "TaskList",
        "TaskUpdate",
        "TaskStop",
        "WebSearch",
        "ToolSearch",
        "ExitPlanMode",
    }
)
# What Claude Code's sandbox asks before a sandboxed command opens a connection.
NETWORK_TOOL = "SandboxNetworkAccess"
# Tools whose input can ask for work that outlives the tool call.
BACKGROUND_TOOLS = frozenset({"Bash", "Agent", "Task"})
# Subagents run in the background unless told otherwise (Claude Code 2.1).
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
FOREGROUND_ONLY = (
    "Background work is not available here: this conversation's turn ends with its "
    "answer, and nothing may keep running after it. Run it in the foreground "
    "(without run_in_background), bounded so that it finishes."
)
# Folders whose entries mean something different in each process (/proc/self,
# /dev/fd -> /proc/self/fd): the callback runs in the core, the tool in Claude
# Code, so a path through them cannot be checked here and is refused.
PER_PROCESS_ROOTS = ("/proc",)
MAX_SYMLINKS = 40


def _resolve(path: str) -> str | None:
    """`path` (absolute) with every symlink resolved, as os.path.realpath does,
    or None when the resolution passes through a per-process folder (/proc,
    also when reached through a symlink such as /dev/fd) or loops."""
    parts = [p for p in path.split("/") if p]
    resolved = "/"
    followed = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        if any(candidate == r or candidate.startswith(r + "/") for r in PER_PROCESS_ROOTS):
            return None
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved = candidate  # not a symlink, or not there (yet): taken as it is
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            return None
        parts = [p for p in target.split("/") if p] + parts
        if target.startswith("/"):
            resolved = "/"
    return resolved


def background_refusal(tool: str, tool_input: dict[str, Any]) -> str | None:
    """Why this tool call may not run (it would start background work), or None."""
    if tool in BACKGROUND_TOOLS and tool_input.get("run_in_background"):
        return FOREGROUND_ONLY
    if tool in SUBAGENT_TOOLS and tool_input.get("isolation") == "remote":
        return FOREGROUND_ONLY
    return None


def in_foreground(tool: str, tool_input: dict[str, Any]) -> dict[str, Any] | None:
    """The input with the background default made explicit, when it needs it."""
    if tool in SUBAGENT_TOOLS and "run_in_background" not in tool_input:
        return {**tool_input, "run_in_background": False}
    return None


async def foreground_hook(
    hook_input: HookInput, _tool_use_id: str | None, _context: HookContext
) -> HookJSONOutput:
    """PreToolUse: refuses background work before Claude Code's own rules can
    allow it; leaves every other decision to the permission callback."""
    tool = str(hook_input.get("tool_name", ""))
    raw = hook_input.get("tool_input")
    tool_input: dict[str, Any] = raw if isinstance(raw, dict) else {}
    refusal = background_refusal(tool, tool_input)
    if refusal is not None:
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": refusal,
            }
        }
    updated = in_foreground(tool, tool_input)
    if updated is not None:
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "updatedInput": updated}}
    return {}


def inside(workspace: Path, candidate: str) -> bool:
    """True when `candidate` (absolute or workspace-relative) stays in the workspace,
    symlinks resolved. Resolved here as Claude Code would (its cwd is the
    workspace); what depends on the process looking (/proc) counts as outside."""
    if candidate.startswith("~"):
        return False  # Claude Code expands it to its own home, never the workspace
    base = os.path.realpath(workspace)
    target = _resolve(os.path.join(base, candidate))
    return target is not None and (target == base or target.startswith(base + os.sep))


def public_host(host: str) -> bool:
    """False for loopback, private, link-local and other internal addresses
    (names that look internal count as internal)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if not name or name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return "." in name  # a DNS name; single labels resolve inside networks
    return address.is_global


def make_permission_callback(
    workspace: Path,
    allowed_tools: Collection[str] | None = None,
    network_hosts: Collection[str] = (),
    client_tools: Collection[str] = (),
) -> PermissionCallback:
    """A callback bound to one conversation's workspace, its key's tool policy
    (`allowed_tools` None means the service default), the hosts sandboxed
    commands may reach, and the request's own tools (which the client runs)."""
    tools = ALLOWED_BY_DEFAULT if allowed_tools is None else frozenset(allowed_tools)
    hosts = frozenset(h.lower() for h in network_hosts if public_host(h))
    client_names = frozenset(client_tools)

    async def can_use_tool(
        tool: str, tool_input: dict[str, Any], _context: ToolPermissionContext
    ) -> PermissionResult:
        if tool_name_from_cli(tool, client_names) in client_names:
            # The client runs its own tools (a client tool named like a built-in wins:
            # that built-in is not offered beside it).
            return PermissionResultAllow()
        if tool == NETWORK_TOOL:
            host = str(tool_input.get("host", "")).lower()
            if host in hosts and public_host(host):
                return PermissionResultAllow()
            return PermissionResultDeny(
                message=f"Network access to {host or 'that host'} is not allowed."
            )
        if tool not in tools or tool not in ALLOWED_BY_DEFAULT:
            return PermissionResultDeny(message=f"The {tool} tool is not allowed here.")
        if tool == "Bash" and tool_input.get("dangerouslyDisableSandbox"):
            return PermissionResultDeny(message="Commands must run inside the sandbox.")
        refusal = background_refusal(tool, tool_input)
        if refusal is not None:
            return PermissionResultDeny(message=refusal)
        for field in PATH_FIELDS:
            value = tool_input.get(field)
            if isinstance(value, str) and value and not inside(workspace, value):
                return PermissionResultDeny(
                    message=f"{value} is outside this conversation's workspace."
                )
        for field in PATTERN_FIELDS:
            value = tool_input.get(field)
            if isinstance(value, str) and value.startswith(("/", "~")):
                prefix = value.split("*", 1)[0]
                if value.startswith("~") or not inside(workspace, prefix or "/"):
                    return PermissionResultDeny(
                        message=f"{value} reaches outside this conversation's workspace."
                    )
        # Unset means background for subagents: make the default explicit.
        return PermissionResultAllow(updated_input=in_foreground(tool, tool_input))

    return can_use_tool
