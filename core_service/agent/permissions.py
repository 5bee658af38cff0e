"""The permission callback: our code, not a bypass mode, decides each tool use.

Claude Code asks this callback before any tool use its own rules do not settle
(our settings leave all of them to us). Only tools this service knows are
allowed: file tools confined to the conversation's workspace, Bash inside the
bubblewrap sandbox, which may not be left; network access from sandboxed
commands only to hosts the operator listed (never loopback or private
addresses); anything unknown is refused.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, ToolPermissionContext

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


def inside(workspace: Path, candidate: str) -> bool:
    """True when `candidate` (absolute or workspace-relative) stays in the workspace,
    symlinks resolved."""
    base = os.path.realpath(workspace)
    target = os.path.realpath(os.path.join(base, candidate))
    return target == base or target.startswith(base + os.sep)


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
) -> PermissionCallback:
    """A callback bound to one conversation's workspace, its key's tool policy
    (`allowed_tools` None means the service default) and the hosts sandboxed
    commands may reach."""
    tools = ALLOWED_BY_DEFAULT if allowed_tools is None else frozenset(allowed_tools)
    hosts = frozenset(h.lower() for h in network_hosts if public_host(h))

    async def can_use_tool(
        tool: str, tool_input: dict[str, Any], _context: ToolPermissionContext
    ) -> PermissionResult:
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
        return PermissionResultAllow()

    return can_use_tool
