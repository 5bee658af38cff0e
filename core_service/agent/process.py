"""One running Claude Code process (a connected ClaudeSDKClient) bound to a
conversation's session id, workspace and home, and its ending: when a
conversation's process goes, everything it started goes with it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeSDKClient, CLIConnectionError, ResultMessage
from claude_agent_sdk.types import Message

from core_service.agent import process_tree
from core_service.agent.client_tools import ClientToolServer
from core_service.agent.options import ProcessShape, SessionStart, build_options
from core_service.agent.workspace_layout import Place, WorkspaceLayout
from core_service.config import CoreConfig

log = logging.getLogger("ccapi.agent")

CONNECT_TIMEOUT_SECONDS = 60.0
# An idle Claude Code exits on its own once its input closes (after writing
# its transcript); the SDK's disconnect allows 5 s for that, then escalates.
CLOSE_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3
# SDK message types that belong to a turn; anything else between turns is status.
TURN_MESSAGE_TYPES = frozenset({"assistant", "user", "result", "stream_event"})


class TurnClient(ClaudeSDKClient):
    """The SDK client, knowing whether a turn is open: from `query()` until
    `receive_response()` has yielded the turn's ResultMessage."""

    turn_open = False

    async def query(self, prompt: Any, session_id: str = "default") -> None:
        self.turn_open = True
        await super().query(prompt, session_id)

    async def receive_response(self) -> AsyncIterator[Message]:
        async for message in super().receive_response():
            if isinstance(message, ResultMessage):
                self.turn_open = False
            yield message


class UidClaims:
    """Which conversation uids have a live process in this core. Forks share
    their parent's uid, so a uid's processes may only be swept by uid when the
    last of its live Claude Code processes ends."""

    def __init__(self) -> None:
        self._holders: collections.Counter[int] = collections.Counter()

    def claim(self, uid: int | None) -> None:
        if uid is not None:
            self._holders[uid] += 1

    def release(self, uid: int | None) -> bool:
        """True when `uid` now has no live process left (its leftovers may go)."""
        if uid is None:
            return False
        self._holders[uid] -= 1
        if self._holders[uid] > 0:
            return False
        del self._holders[uid]
        return True


async def _quietly_disconnect(client: ClaudeSDKClient) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT_SECONDS)


def _cli_pid(client: ClaudeSDKClient) -> int | None:
    """The Claude Code process id (the SDK keeps it on its transport)."""
    transport = getattr(client, "_transport", None)
    process = getattr(transport, "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


@dataclass
class AgentProcess:
    client: ClaudeSDKClient
    session_id: str
    place: Place
    shape: ProcessShape
    last_used: float = field(default_factory=time.monotonic)
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=20)
    )
    closed: bool = False
    # The Claude Code process (pid, start time); None if the SDK hid it.
    proc: process_tree.Proc | None = None
    uids: UidClaims | None = None
    # The MCP server of the request's own tools, when the shape has them.
    client_tools: ClientToolServer | None = None
    # Claude Code's running cost total after this process's last turn; it
    # carries the session's total on through a resume (translate.turn_cost).
    reported_cost_usd: float = 0.0

    def discard_stray_messages(self) -> int:
        """Drops turn messages Claude Code sent while no turn was open and
        returns how many there were (0 normally). Call before each `query()`:
        a stray answer left in the SDK's buffer would be read as the next
        turn's, and every later turn would get the one before it. A non-zero
        count means the process acted on its own: close it and start afresh."""
        query = getattr(self.client, "_query", None)
        receive = getattr(query, "_message_receive", None)
        if receive is None:
            return 0
        stray = 0
        while True:
            try:
                message = receive.receive_nowait()
            except Exception:
                break  # empty (WouldBlock), or closed
            if isinstance(message, dict) and message.get("type") in TURN_MESSAGE_TYPES:
                stray += 1
        if stray:
            log.warning(
                "claude sent messages with no turn open",
                extra={"session_id": self.session_id, "count": stray},
            )
        return stray

    async def close(self) -> None:
        """Ends the process and everything it started (commands, subagents,
        whatever they spawned), and waits until they are gone; never raises.

        An idle process first gets the chance to exit on its own, so its
        transcript is complete for a later resume; one in the middle of a
        turn is stopped at once, so it makes no further model request."""
        if self.closed:
            return
        self.closed = True
        mid_turn = bool(getattr(self.client, "turn_open", False))
        # Taken before the CLI exits: afterwards its children are no longer its.
        tree = await process_tree.afreeze(self.proc, mid_turn)
        if not mid_turn:
            try:
                await asyncio.wait_for(self.client.disconnect(), CLOSE_TIMEOUT_SECONDS)
            except (Exception, asyncio.CancelledError):
                log.warning(
                    "claude process did not close cleanly", extra={"session_id": self.session_id}
                )
        sweep_uid = self.uids.release(self.place.uid) if self.uids is not None else False
        left = await process_tree.akill(tree, self.proc, self.place.uid if sweep_uid else None)
        if mid_turn:
            await _quietly_disconnect(self.client)
        if left:
            log.warning(
                "processes outlived their conversation",
                extra={"session_id": self.session_id, "pids": left},
            )


class ProcessFactory:
    """Starts Claude Code processes with the service's options."""

    def __init__(self, config: CoreConfig, layout: WorkspaceLayout) -> None:
        self._config = config
        self._layout = layout
        # Live configuration may change the retry cap for processes started later.
        self.max_retries = config.claude_max_retries
        # The Claude Code binary to run; None: the SDK's bundled one.
        self.cli_path: Path | None = None
        self.uids = UidClaims()

    async def start(self, place: Place, shape: ProcessShape, start: SessionStart) -> AgentProcess:
        tail: collections.deque[str] = collections.deque(maxlen=20)

        def on_stderr(line: str) -> None:
            tail.append(line)
            log.debug("claude stderr", extra={"session_id": start.session_id, "line": line})

        server = (
            ClientToolServer(shape.client_tools, timeout=self._config.client_tool_timeout_seconds)
            if shape.client_tools is not None
            else None
        )
        options = build_options(
            self._config,
            self._layout.workspace_path(place.workspace),
            self._layout.home_path(place.home),
            place.uid,
            self.max_retries,
            shape,
            start,
            stderr=on_stderr,
            cli_path=self.cli_path,
            homes_roots=self._layout.homes_roots(),
            client_tools=server,
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            client = TurnClient(options)
            try:
                await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_SECONDS)
                break
            except CLIConnectionError:
                # The CLI died during the initialize handshake (once seen as a
                # crash before exec, now avoided in cli.py); a fresh process
                # usually works, so only a repeated failure reaches the caller.
                log.warning(
                    "claude process failed to start",
                    extra={
                        "session_id": start.session_id,
                        "attempt": attempt,
                        "stderr": "\n".join(tail),
                    },
                )
                await _stop_unstarted(client)
                if attempt == START_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)
            except BaseException:
                await _stop_unstarted(client)
                raise
        proc = process_tree.identify(_cli_pid(client))
        if proc is None:
            log.warning("cannot see the claude process id", extra={"session_id": start.session_id})
        self.uids.claim(place.uid)
        return AgentProcess(
            client=client,
            session_id=start.session_id,
            place=place,
            shape=shape,
            stderr_tail=tail,
            proc=proc,
            uids=self.uids,
            client_tools=server,
            reported_cost_usd=start.reported_cost_usd,
        )


async def _stop_unstarted(client: ClaudeSDKClient) -> None:
    """A process that never became a conversation's: killed with its children."""
    proc = process_tree.identify(_cli_pid(client))
    tree = await process_tree.afreeze(proc, True)
    await process_tree.akill(tree, proc, None)
    await _quietly_disconnect(client)
