"""Attachments: files a client attaches to the new turn's user messages
(`ContentPart.file`), written into the conversation's workspace before the
turn runs.

Two steps, so a bad request leaves nothing behind: `resolve` checks every
attachment (the name, the size, an uploaded file's owner) and reads the
bytes, before any session is chosen; `write` puts them into the workspace
only once all passed, each first under a temporary name and then renamed, as
the conversation's uid (the workspace is a tree the agent controls: root
never writes or follows links in it). `prompt_content` replaces each part by
a line telling the model the file's name and where it is.

Only the new turn's messages count (the trailing user messages): a file in
resent history was written when that turn ran, and writing it again would
undo what the agent has done to it since.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from claudecode.v1 import content_pb2 as cpb
from core_service.attachment_log import AttachmentEntry, AttachmentLog
from core_service.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from core_service.file_store import MAX_FILENAME_BYTES, FileStore, too_large

MAX_ATTACHMENTS = 20
# Names Claude Code (or git) gives a meaning in its working directory.
RESERVED_NAMES = frozenset(
    {".", "..", ".claude", ".git", ".mcp.json", "CLAUDE.md", "CLAUDE.local.md", ".gitignore"}
)
# Device names Windows tools refuse; a workspace may be copied to one.
_DEVICE_RE = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
TEMP_PREFIX = ".ccapi-attach-"


@dataclass(frozen=True)
class Attached:
    """One checked attachment, ready to write."""

    name: str
    data: bytes
    media_type: str
    # The uploaded file it came from ("" for inline data).
    file_id: str = ""


def check_name(name: str, param: str) -> str:
    """The name as given when it is a plain, harmless file name; 400 otherwise
    (refused, never rewritten: the client's name is what the prompt says)."""
    if not name:
        raise InvalidArgument("An attached file needs a filename.", param=param)
    if "\x00" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(
            "The filename must not contain NUL or control characters.", param=param
        )
    if "/" in name or "\\" in name or ".." in name:
        raise InvalidArgument(
            f"The filename {name!r} must be a plain file name (no '/', '\\' or '..').",
            param=param,
        )
    if name in RESERVED_NAMES or _DEVICE_RE.match(name) or name.startswith(TEMP_PREFIX):
        raise InvalidArgument(f"The filename {name!r} is reserved.", param=param)
    if name != name.strip() or name.endswith("."):
        raise InvalidArgument(
            f"The filename {name!r} must not start or end with spaces or end with '.'.",
            param=param,
        )
    if len(name.encode()) > MAX_FILENAME_BYTES:
        raise InvalidArgument(
            f"The filename is longer than {MAX_FILENAME_BYTES} bytes.", param=param
        )
    return name


def new_turn_parts(messages: Sequence[cpb.Message]) -> list[tuple[str, cpb.Attachment]]:
    """The new turn's attachments with the param naming each, in prompt order."""
    found: list[tuple[str, cpb.Attachment]] = []
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role == cpb.ROLE_ASSISTANT:
            break
        if message.role != cpb.ROLE_USER:
            continue
        mine = [
            (f"messages[{i}].content[{j}].file", part.file)
            for j, part in enumerate(message.content)
            if part.WhichOneof("part") == "file"
        ]
        found[:0] = mine
    return found


class Attachments:
    """The turn pipeline's view: resolve against the file store, place into a
    workspace, and note what was attached for the admin site."""

    def __init__(self, store: FileStore, log: AttachmentLog) -> None:
        self._store = store
        self._log = log

    async def aresolve(self, key_id: str, messages: Sequence[cpb.Message]) -> list[Attached]:
        """`resolve` on a thread; nothing to do (and no thread) without attachments."""
        if not new_turn_parts(messages):
            return []
        return await asyncio.to_thread(resolve, self._store, key_id, messages)

    async def aplace(
        self,
        workspace: Path,
        uid: int | None,
        session_id: str,
        turn_id: str,
        files: Sequence[Attached],
        content: Sequence[cpb.ContentPart],
    ) -> list[cpb.ContentPart]:
        """Writes the files (`write`, on a thread), records them, and returns
        the prompt that names them."""
        if files:
            await asyncio.to_thread(write, workspace, uid, files)
            now = int(time.time())
            entries = [
                AttachmentEntry(turn_id, f.name, f.media_type, len(f.data), f.file_id, now)
                for f in files
            ]
            await asyncio.to_thread(self._log.record, session_id, entries)
        return prompt_content(content, files)


def refuse_without_store(messages: Sequence[cpb.Message]) -> None:
    """For a core built without a file store (tests of the pipeline alone)."""
    found = new_turn_parts(messages)
    if found:
        raise InvalidArgument("This core does not take attached files.", param=found[0][0])


def resolve(store: FileStore, key_id: str, messages: Sequence[cpb.Message]) -> list[Attached]:
    """Every attachment of the new turn checked and read; raises the first
    problem (404 naming the file_id, 413, 400). Synchronous: run in a thread."""
    found = new_turn_parts(messages)
    if len(found) > MAX_ATTACHMENTS:
        raise InvalidArgument(
            f"At most {MAX_ATTACHMENTS} files can be attached to one turn; got {len(found)}.",
            param=found[MAX_ATTACHMENTS][0],
        )
    limit = store.policy().max_bytes
    ready: list[Attached] = []
    seen: set[str] = set()
    for param, part in found:
        if part.file_id:
            attached = _uploaded(store, key_id, part, param, limit)
        else:
            if len(part.data) > limit:
                raise _too_large(limit, f"{param}.file_data")
            name = check_name(part.filename, f"{param}.filename")
            attached = Attached(name, part.data, part.media_type)
        if attached.name in seen:
            raise InvalidArgument(
                f"Two attached files are named {attached.name!r}.", param=f"{param}.filename"
            )
        seen.add(attached.name)
        ready.append(attached)
    return ready


def _uploaded(
    store: FileStore, key_id: str, part: cpb.Attachment, param: str, limit: int
) -> Attached:
    try:
        stored, handle = store.open_content(key_id, part.file_id)
    except NotFound as missing:
        # Another key's file is as unknown as one that never existed.
        raise NotFound(missing.message, reason="file_not_found", param=f"{param}.file_id") from None
    with handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit, f"{param}.file_id")
    name = check_name(part.filename or stored.filename, f"{param}.filename")
    return Attached(name, data, part.media_type or stored.media_type, stored.id)


def _too_large(limit: int, param: str) -> ResourceExhausted:
    return ResourceExhausted(too_large(limit).message, reason="file_too_large", param=param)


# --- writing ----------------------------------------------------------------------------


def write(workspace: Path, uid: int | None, files: Sequence[Attached]) -> None:
    """Writes every file into the workspace (replacing a file of the same name),
    or none: each goes to a temporary name first, the renames come last, and
    a name the renames could not take (a folder) is refused before any write."""
    for attached in files:
        try:
            # lstat: metadata only, no link followed.
            found = os.lstat(workspace / attached.name)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(found.st_mode):
            raise FailedPrecondition(
                f"The workspace has a folder named {attached.name!r}; the attached file "
                "cannot replace it.",
                reason="attachment_not_written",
            )
    staged: list[tuple[str, str]] = []
    try:
        for attached in files:
            temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            _write_new(workspace, uid, temp, attached.data)
            staged.append((temp, attached.name))
        for temp, name in staged:
            _rename(workspace, uid, temp, name)
    except (OSError, subprocess.SubprocessError) as error:
        for temp, _ in staged:
            _remove(workspace, uid, temp)
        raise FailedPrecondition(
            f"The attached files could not be written into the workspace: {_why(error)}",
            reason="attachment_not_written",
        ) from None


def _why(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return (error.stderr or b"").decode(errors="replace").strip()[:300] or str(error)
    return str(error)


def _write_new(workspace: Path, uid: int | None, name: str, data: bytes) -> None:
    if uid is None:
        dir_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        finally:
            os.close(dir_fd)
        return
    # As the conversation's uid: it can only write where the agent could.
    _as_agent(
        uid, workspace, ["dd", f"of={name}", "conv=excl", "oflag=nofollow", "status=none"], data
    )


def _rename(workspace: Path, uid: int | None, temp: str, name: str) -> None:
    if uid is None:
        dir_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            # rename() replaces a link of that name, never what it points to.
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        return
    _as_agent(uid, workspace, ["mv", "-f", "-T", "--", temp, name])


def _remove(workspace: Path, uid: int | None, temp: str) -> None:
    try:
        if uid is None:
            os.unlink(workspace / temp)
        else:
            _as_agent(uid, workspace, ["rm", "-f", "--", temp])
    except (OSError, subprocess.SubprocessError):
        pass


def _as_agent(uid: int, workspace: Path, argv: list[str], data: bytes = b"") -> None:
    subprocess.run(
        argv,
        input=data,
        user=uid,
        cwd=workspace,
        check=True,
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )


# --- the prompt -------------------------------------------------------------------------


def notice(attached: Attached) -> str:
    kind = f"{attached.media_type}, " if attached.media_type else ""
    return (
        f"[Attached file: {attached.name} ({kind}{len(attached.data)} bytes), saved in the "
        f"working directory as ./{attached.name}]"
    )


def prompt_content(
    content: Sequence[cpb.ContentPart], files: Sequence[Attached]
) -> list[cpb.ContentPart]:
    """The turn's content with each attachment part replaced by its notice (in
    order); Claude Code reads the file itself (Read handles text, PDFs, images)."""
    notices = iter(files)
    out: list[cpb.ContentPart] = []
    for part in content:
        if part.WhichOneof("part") != "file":
            out.append(part)
            continue
        attached = next(notices, None)
        if attached is not None:
            out.append(cpb.ContentPart(text=notice(attached)))
    return out
