"""The permission callback: our code, not a bypass mode, decides each tool use.

Claude Code asks this callback before any tool use its own rules do not settle.
File tools are confined to the conversation's workspace; Bash runs inside the
bubblewrap sandbox and may not ask to leave it; network fetches from our host
are refused.
"""

from __future__ import annotations

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
# Tools that fetch from the network on our host (SSRF towards loopback services).
DENIED_BY_DEFAULT = frozenset({"WebFetch"})


def inside(workspace: Path, candidate: str) -> bool:
    """True when `candidate` (absolute or workspace-relative) stays in the workspace,
    symlinks resolved."""
    base = os.path.realpath(workspace)
    target = os.path.realpath(os.path.join(base, os.path.expanduser(candidate)))
    return target == base or target.startswith(base + os.sep)


def make_permission_callback(
    workspace: Path, allowed_tools: Collection[str] | None = None
) -> PermissionCallback:
    """A callback bound to one conversation's workspace and its key's tool policy
    (`allowed_tools` None means every tool but those denied by default)."""

    async def can_use_tool(
        tool: str, tool_input: dict[str, Any], _context: ToolPermissionContext
    ) -> PermissionResult:
        if allowed_tools is not None and tool not in allowed_tools:
            return PermissionResultDeny(message=f"The {tool} tool is not allowed for this key.")
        if allowed_tools is None and tool in DENIED_BY_DEFAULT:
            return PermissionResultDeny(message=f"The {tool} tool is disabled on this service.")
        if tool == "Bash" and tool_input.get("dangerouslyDisableSandbox"):
            return PermissionResultDeny(message="Commands must run inside the sandbox.")
        for field in PATH_FIELDS:
            value = tool_input.get(field)
            if isinstance(value, str) and value and not inside(workspace, value):
                return PermissionResultDeny(
                    message=f"{value} is outside this conversation's workspace."
                )
        return PermissionResultAllow()

    return can_use_tool
