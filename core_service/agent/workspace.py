"""The data dir's layout and the per-conversation directories in it.

    $CCAPI_DATA_DIR/           0711 root   (traversable, not listable)
      ccapi.db                 0600 root
      workspaces/              0711 root
        <random>/              0700 uid N  one per conversation
      homes/                   0711 root
        <random>/              0700 uid N  Claude Code's $HOME (transcripts)

When the core runs as root, each conversation's Claude Code runs as a uid of
its own (no passwd entry needed), so plain file modes keep conversations
apart even for commands the sandbox's rules do not cover.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core_service.config import CoreConfig


@dataclass(frozen=True)
class Place:
    """Where a conversation lives: its directories and the uid it runs as
    (None: as the core itself, when the core is not root)."""

    workspace: str
    home: str
    uid: int | None


class WorkspaceLayout:
    def __init__(self, config: CoreConfig, next_uid: Callable[[], int] | None) -> None:
        self.data_dir = config.data_dir
        self.workspaces = config.workspaces_dir
        self.homes = config.homes_dir
        # None: conversations run as the core's own user (a non-root core).
        self._next_uid = next_uid

    def prepare(self) -> None:
        for path in (self.data_dir, self.workspaces, self.homes):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o711)
        if self._next_uid is not None:
            _check_traversable(self.data_dir)

    def new_place(self) -> Place:
        """Creates a fresh workspace and home with a uid of their own."""
        place = Place(secrets.token_hex(16), secrets.token_hex(16), self._uid())
        self._make_private(self.workspace_path(place.workspace), place.uid)
        self._make_private(self.home_path(place.home), place.uid)
        return place

    def copy_place(self, source: Place) -> Place:
        """Copies a conversation's directories for a fork, under a new uid."""
        place = Place(secrets.token_hex(16), secrets.token_hex(16), self._uid())
        for src, dst in (
            (self.workspace_path(source.workspace), self.workspace_path(place.workspace)),
            (self.home_path(source.home), self.home_path(place.home)),
        ):
            if src.exists():
                shutil.copytree(src, dst, symlinks=True)
                os.chmod(dst, 0o700)
                _chown_tree(dst, place.uid)
            else:
                self._make_private(dst, place.uid)
        # Claude Code files transcripts under a folder named after the cwd.
        projects = self.home_path(place.home) / ".claude" / "projects"
        old_key = project_key(self.workspace_path(source.workspace))
        if (projects / old_key).exists():
            os.rename(
                projects / old_key, projects / project_key(self.workspace_path(place.workspace))
            )
        return place

    def _uid(self) -> int | None:
        return self._next_uid() if self._next_uid is not None else None

    def workspace_path(self, name: str) -> Path:
        return self.workspaces / name

    def home_path(self, name: str) -> Path:
        return self.homes / name

    def remove(self, place: Place) -> None:
        shutil.rmtree(self.workspace_path(place.workspace), ignore_errors=True)
        shutil.rmtree(self.home_path(place.home), ignore_errors=True)

    @staticmethod
    def _make_private(path: Path, uid: int | None) -> None:
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
        if uid is not None:
            os.chown(path, uid, 0)


def project_key(cwd: Path) -> str:
    """Claude Code's folder name for a working directory's transcripts."""
    return re.sub(r"[^a-zA-Z0-9]", "-", str(cwd))


def _chown_tree(root: Path, uid: int | None) -> None:
    if uid is None:
        return
    os.chown(root, uid, 0, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, 0, follow_symlinks=False)


def _check_traversable(path: Path) -> None:
    """Conversations run as other uids: every folder above the data dir must
    let them pass, or Claude Code cannot reach its workspace."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not traversable by other users (chmod o+x), so the "
                f"agent cannot reach workspaces under {path}; choose another CCAPI_DATA_DIR"
            )
