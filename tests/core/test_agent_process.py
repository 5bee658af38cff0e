"""AgentProcess's own mechanisms, in-process: the SDK client objects are real,
no Claude Code runs."""

from __future__ import annotations

import asyncio
import subprocess
from typing import cast

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk._internal.query import Query
from claude_agent_sdk._internal.transport import Transport

from core_service.agent import process_tree
from core_service.agent.options import ProcessShape
from core_service.agent.process import AgentProcess, TurnClient, UidClaims
from core_service.agent.workspace_layout import Place


def test_stray_turn_messages_are_found_and_dropped_before_the_next_turn() -> None:
    """A message Claude Code sends with no turn open would be read as the next
    turn's answer; the SDK buffers it in the client's query."""

    async def scenario() -> tuple[int, int]:
        client = TurnClient(ClaudeAgentOptions())
        query = Query(cast(Transport, object()), is_streaming_mode=True)
        client._query = query
        process = AgentProcess(client, "s", Place("w", "h", None), ProcessShape(model="m"))
        assert process.discard_stray_messages() == 0
        for kind in ("system", "assistant", "result"):
            query._message_send.send_nowait({"type": kind})
        found = process.discard_stray_messages()
        return found, process.discard_stray_messages()

    assert asyncio.run(scenario()) == (2, 0)


def test_a_uid_is_swept_only_when_its_last_process_ends() -> None:
    """Forks share their parent's uid: ending one must not kill the other's work."""
    claims = UidClaims()
    claims.claim(4242)
    claims.claim(4242)
    assert claims.release(4242) is False
    assert claims.release(4242) is True
    assert claims.release(None) is False


def test_killing_a_tree_ends_detached_grandchildren_too() -> None:
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 287 & sleep 286 & wait"])
    try:
        root = process_tree.identify(parent.pid)
        for _ in range(100):
            if len(process_tree.freeze(root, False)) >= 2:
                break
        frozen = process_tree.freeze(root, True)
        assert len(frozen) >= 3
        assert process_tree.kill(frozen, root, None) == []
        parent.wait(5)
    finally:
        parent.kill()
