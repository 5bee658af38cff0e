"""Where conversations live: the data dir's layout and the per-conversation
directories in it (the agent root, when it is not the data dir, holds the
workspaces and homes; see config.choose_agent_dir).

    $CCAPI_DATA_DIR/           0711 root   (traversable, not listable)
      ccapi.db                 0600 root
      agent-dir                0600 root   the agent root, decided once
      workspaces/              0711 root
        <random>/              0700 uid N  one per conversation
      homes/                   0711 root
        <random>/              0700 uid N  Claude Code's $HOME (transcripts)

A session stores its folders' names; they are found under the agent root, or
under one used before (an earlier record, or the places a release before the
record used), so a session is found wherever it was created.

When the core runs as root, each conversation's Claude Code runs as a uid of
its own (no passwd entry needed), so plain file modes keep conversations
apart even for commands the sandbox's rules do not cover.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core_service.config import (
    AGENT_DIR_RECORD,
    CoreConfig,
    fallback_agent_dir,
    recorded_agent_dirs,
)

TMP_PREFIXES = ("claude", "cc-socks", "cc-daemon")


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
        self.agent_root = config.agent_root
        self.workspaces = config.workspaces_dir
        self.homes = config.homes_dir
        # None: conversations run as the core's own user (a non-root core).
        self._next_uid = next_uid
        self._roots = self._known_roots()

    def _known_roots(self) -> list[Path]:
        """Agent roots to look in, the current one first."""
        candidates = [
            self.agent_root,
            *recorded_agent_dirs(self.data_dir),
            self.data_dir,
            fallback_agent_dir(self.data_dir),
        ]
        return list(dict.fromkeys(candidates))

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o711)
        self._record_root()
        for path in (self.workspaces, self.homes):
            # Created 0711 all the way down (our umask would make them 0700).
            for folder in reversed([path, *path.parents]):
                if not folder.exists():
                    folder.mkdir(mode=0o711)
                    os.chmod(folder, 0o711)
            os.chmod(path, 0o711)
        if self._next_uid is not None:
            _check_traversable(self.agent_root)

    def new_place(self) -> Place:
        """Creates a fresh workspace and home with a uid of their own."""
        place = Place(secrets.token_hex(16), secrets.token_hex(16), self._uid())
        if place.uid is not None:
            # Claude Code keeps per-uid folders in /tmp; a uid handed out again
            # (a reset database, another deployment on this host) must not
            # inherit what an earlier conversation left there.
            for prefix in TMP_PREFIXES:
                shutil.rmtree(f"/tmp/{prefix}-{place.uid}", ignore_errors=True)
        self._make_private(self.workspace_path(place.workspace), place.uid)
        self._make_private(self.home_path(place.home), place.uid)
        return place

    def copy_place(self, source: Place) -> Place:
        """Copies a conversation's directories for a fork.

        The fork keeps the parent's uid: both belong to the same key, and the
        copy then runs as that uid (`cp -a`, `mv`), so it can only read what the
        agent itself could; root never walks a tree the agent controls.
        """
        place = Place(secrets.token_hex(16), secrets.token_hex(16), source.uid)
        moves = (
            (self.workspace_path(source.workspace), self.workspace_path(place.workspace)),
            (self.home_path(source.home), self.home_path(place.home)),
        )
        for src, dst in moves:
            self._make_private(dst, place.uid)
            if src.exists():
                _as_agent(place.uid, ["cp", "-a", "--", f"{src}/.", f"{dst}/"])
        # Claude Code files transcripts under a folder named after the cwd.
        projects = self.home_path(place.home) / ".claude" / "projects"
        old_key = project_key(self.workspace_path(source.workspace))
        new_key = project_key(self.workspace_path(place.workspace))
        _as_agent(
            place.uid,
            [
                "sh",
                "-c",
                'if [ -d "$1" ]; then mv -T -- "$1" "$2"; fi',
                "sh",
                str(projects / old_key),
                str(projects / new_key),
            ],
        )
        return place

    def _uid(self) -> int | None:
        return self._next_uid() if self._next_uid is not None else None

    def _record_root(self) -> None:
        earlier = recorded_agent_dirs(self.data_dir)
        if earlier[:1] == [self.agent_root]:
            return
        lines = [self.agent_root, *(r for r in earlier if r != self.agent_root)]
        record = self.data_dir / AGENT_DIR_RECORD
        partial = record.with_name(f".{AGENT_DIR_RECORD}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        os.replace(partial, record)
        self._roots = self._known_roots()

    def _find(self, kind: str, name: str) -> Path:
        for root in self._roots:
            path = root / kind / name
            if path.is_dir():
                return path
        return self.agent_root / kind / name  # new: goes to the current root

    def workspace_path(self, name: str) -> Path:
        return self._find("workspaces", name)

    def home_path(self, name: str) -> Path:
        return self._find("homes", name)

    def homes_roots(self) -> list[Path]:
        """Every folder conversations' homes are kept in (all denied to the agent)."""
        return [self.homes] + [
            root / "homes" for root in self._roots[1:] if (root / "homes").is_dir()
        ]

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


def _as_agent(uid: int | None, argv: list[str]) -> None:
    """Runs a file command as the conversation's uid (as ourselves without one)."""
    subprocess.run(
        argv,
        user=uid,
        check=True,
        capture_output=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )


def _check_traversable(path: Path) -> None:
    """Conversations run as other uids: every folder above their workspaces
    must let them pass, or Claude Code cannot reach its workspace."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not traversable by other users (chmod o+x), so the "
                f"agent cannot reach workspaces under {path}; "
                "set CCAPI_AGENT_DIR to a folder it can reach"
            )


def reachable_cli(bundled: Path, folder: Path) -> Path:
    """The Claude Code binary at a path the agents' uids can execute: the
    bundled one when they can reach it, else a copy in `folder`, made once per
    version (a virtualenv inside a 0700 home or temp dir is out of their reach)."""
    st = os.stat(bundled)
    if st.st_mode & 0o001 and all(os.stat(p).st_mode & 0o001 for p in bundled.parents):
        return bundled
    for part in reversed([folder, *folder.parents]):
        if not part.exists():
            part.mkdir(mode=0o711)
            os.chmod(part, 0o711)
    target = folder / f"claude-{st.st_size}-{int(st.st_mtime)}"
    if not target.exists():
        partial = folder / f".{target.name}.{os.getpid()}"
        shutil.copyfile(bundled, partial)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    return target
