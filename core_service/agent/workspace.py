"""The data dir's layout and the per-conversation directories in it.

    $CCAPI_DATA_DIR/           0711 root   (traversable, not listable)
      ccapi.db                 0600 root
      workspaces/              0711 root
        <random>/              0700 agent  one per conversation
      homes/                   0711 root
        <random>/              0700 agent  Claude Code's $HOME (transcripts)

When the core runs as root the agent runs as an unprivileged user, so the
file modes hold even against commands that slip past the sandbox's rules.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core_service.config import CoreConfig


@dataclass(frozen=True)
class AgentIdentity:
    """The OS user Claude Code runs as; None fields mean "as the core"."""

    user: str | None
    uid: int | None
    gid: int | None


def ensure_agent_user(name: str) -> AgentIdentity:
    """Looks up (creating, when we are root) the agent's OS user."""
    if not name:
        return AgentIdentity(None, None, None)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            raise RuntimeError(f"agent user {name!r} does not exist") from None
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return AgentIdentity(name, entry.pw_uid, entry.pw_gid)


class WorkspaceLayout:
    def __init__(self, config: CoreConfig, identity: AgentIdentity) -> None:
        self.data_dir = config.data_dir
        self.workspaces = config.workspaces_dir
        self.homes = config.homes_dir
        self.identity = identity

    def prepare(self) -> None:
        for path in (self.data_dir, self.workspaces, self.homes):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o711)

    def new_pair(self) -> tuple[str, str]:
        """Creates a fresh workspace and home; returns their names."""
        workspace, home = secrets.token_hex(16), secrets.token_hex(16)
        self._make_private(self.workspace_path(workspace))
        self._make_private(self.home_path(home))
        return workspace, home

    def copy_pair(self, workspace: str, home: str) -> tuple[str, str]:
        """Copies a conversation's directories for a fork; returns the new names."""
        new_ws, new_home = secrets.token_hex(16), secrets.token_hex(16)
        for src, dst in (
            (self.workspace_path(workspace), self.workspace_path(new_ws)),
            (self.home_path(home), self.home_path(new_home)),
        ):
            if src.exists():
                shutil.copytree(src, dst, symlinks=True)
                os.chmod(dst, 0o700)
            else:
                self._make_private(dst)
        return new_ws, new_home

    def workspace_path(self, name: str) -> Path:
        return self.workspaces / name

    def home_path(self, name: str) -> Path:
        return self.homes / name

    def remove(self, workspace: str, home: str) -> None:
        shutil.rmtree(self.workspace_path(workspace), ignore_errors=True)
        shutil.rmtree(self.home_path(home), ignore_errors=True)

    def _make_private(self, path: Path) -> None:
        path.mkdir(mode=0o700)
        if self.identity.uid is not None and self.identity.gid is not None:
            os.chown(path, self.identity.uid, self.identity.gid)
