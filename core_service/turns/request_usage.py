"""Which tokens each request of a client-tool round trip books.

One Claude Code turn can span several RunTurn requests: the one that made
the client tool calls, then each that brought results. Claude Code reports
usage for the whole turn only in its result message, which the last request
reads. So a request that stops for client calls books the model calls it
saw streamed (each call's `message_start` usage, updated by its
`message_delta`), and the request that reads the result books the result's
total less what the earlier requests of that turn booked: every request
covers what the model did for it, and together they add up to Claude Code's
total. Cost is known only from the result, so it is booked by the last
request. Subagents' calls (which carry a parent tool use) are left to the
result's total.
"""

from __future__ import annotations

from typing import Any

from claude_agent_sdk import StreamEvent

from claudecode.v1 import events_pb2 as ev

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


class SeenCalls:
    """The main agent's model calls one request streamed, with their usage."""

    def __init__(self) -> None:
        # One entry per call (message_start), the latest figures reported.
        self._calls: list[dict[str, Any]] = []

    def note(self, message: object) -> None:
        """Feed every SDK message the request reads."""
        if not isinstance(message, StreamEvent) or message.parent_tool_use_id is not None:
            return
        event = message.event
        kind = event.get("type")
        if kind == "message_start":
            start = event.get("message")
            usage = start.get("usage") if isinstance(start, dict) else None
            self._calls.append(dict(usage) if isinstance(usage, dict) else {})
        elif kind == "message_delta" and self._calls:
            usage = event.get("usage")
            if isinstance(usage, dict):
                # Anthropic's message_delta figures are cumulative for the call.
                self._calls[-1].update({k: v for k, v in usage.items() if v is not None})

    def usage(self) -> ev.Usage:
        total = ev.Usage()
        for call in self._calls:
            for name in TOKEN_FIELDS:
                setattr(total, name, getattr(total, name) + int(call.get(name) or 0))
        return total


def of_request(reported: ev.Usage, has_result: bool, seen: ev.Usage, earlier: ev.Usage) -> ev.Usage:
    """This request's share: `seen` when it ended before Claude Code's result
    (stopped for client calls), else the result's total `reported` less
    `earlier` (what the turn's earlier requests booked)."""
    if not has_result:
        share = ev.Usage()
        share.CopyFrom(seen)
        return share
    return less(reported, earlier)


def less(total: ev.Usage, part: ev.Usage) -> ev.Usage:
    """`total` minus `part`, never below zero."""
    out = ev.Usage(cost_usd=max(0.0, total.cost_usd - part.cost_usd))
    for name in TOKEN_FIELDS:
        setattr(out, name, max(0, getattr(total, name) - getattr(part, name)))
    return out


def add(into: ev.Usage, part: ev.Usage) -> None:
    into.cost_usd += part.cost_usd
    for name in TOKEN_FIELDS:
        setattr(into, name, getattr(into, name) + getattr(part, name))
