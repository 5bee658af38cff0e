"""One running Claude Code process (a connected ClaudeSDKClient) bound to a
conversation's session id, workspace and home."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from claude_agent_sdk import ClaudeSDKClient, CLIConnectionError

from core_service.agent.options import ProcessShape, SessionStart, build_options
from core_service.agent.workspace import Place, WorkspaceLayout
from core_service.config import CoreConfig

log = logging.getLogger("ccapi.agent")

CONNECT_TIMEOUT_SECONDS = 60.0
CLOSE_TIMEOUT_SECONDS = 5.0
START_ATTEMPTS = 3


async def _quietly_disconnect(client: ClaudeSDKClient) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT_SECONDS)


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

    async def close(self) -> None:
        """Ends the process; never raises, never hangs."""
        if self.closed:
            return
        self.closed = True
        try:
            await asyncio.wait_for(self.client.disconnect(), CLOSE_TIMEOUT_SECONDS)
        except (Exception, asyncio.CancelledError):
            log.warning(
                "claude process did not close cleanly", extra={"session_id": self.session_id}
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

    async def start(self, place: Place, shape: ProcessShape, start: SessionStart) -> AgentProcess:
        tail: collections.deque[str] = collections.deque(maxlen=20)

        def on_stderr(line: str) -> None:
            tail.append(line)
            log.debug("claude stderr", extra={"session_id": start.session_id, "line": line})

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
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            client = ClaudeSDKClient(options)
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
                await _quietly_disconnect(client)
                if attempt == START_ATTEMPTS:
                    raise
                await asyncio.sleep(0.2 * attempt)
            except BaseException:
                await _quietly_disconnect(client)
                raise
        return AgentProcess(
            client=client,
            session_id=start.session_id,
            place=place,
            shape=shape,
            stderr_tail=tail,
        )
