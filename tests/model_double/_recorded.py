"""What the double saw: one immutable record per HTTP request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# Claude Code writes this line into its environment block; in CLI 2.1.x the
# block travels as a role "system" message inside `messages`, not in `system`.
_CWD_RE = re.compile(r"Primary working directory:\s*(\S[^\n]*)")
# Reminders the CLI injects into user turns; they are not what the user typed.
_REMINDER_RE = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
# How Claude Code (2.1.331) asks for a compaction summary (/compact, auto-compact):
# the whole conversation, then a user message with this instruction, tools still listed.
_COMPACTION_MARK = "an <analysis> block followed by a <summary> block"


def _block_texts(content: Any) -> list[str]:
    """Texts of a message `content` (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ]


def _result_text(content: Any) -> str:
    """A tool_result's content (a string or a list of blocks) as one text."""
    return "\n".join(_block_texts(content))


@dataclass(frozen=True)
class SeenToolResult:
    """One tool_result block the model received, paired with the call it answers."""

    tool_use_id: str
    name: str  # the tool_use block's name in the history; "" if the call is not there
    text: str  # its text content, blocks joined by newlines
    is_error: bool


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. Derived views are computed lazily from `body`."""

    method: str
    path: str  # URL path without the query, e.g. "/v1/messages"
    query: str  # raw query string, e.g. "beta=true"
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]  # parsed JSON ({} when the body was empty or not JSON)
    index: int = 0  # arrival order among all recorded requests, from 0
    received_at: float = 0.0  # time.monotonic() at arrival
    raw_body: bytes = field(default=b"", repr=False)

    @property
    def model(self) -> str:
        value = self.body.get("model")
        return value if isinstance(value, str) else ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        value = self.body.get("messages")
        return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @cached_property
    def system_text(self) -> str:
        """Top-level `system` plus every role "system" message, joined by newlines.

        Both count because the CLI moved its environment block (with the working
        directory) from `system` into a system message.
        """
        parts = _block_texts(self.body.get("system"))
        for message in self.messages:
            if message.get("role") == "system":
                parts.extend(_block_texts(message.get("content")))
        return "\n".join(parts)

    @cached_property
    def last_user_text(self) -> str:
        """Text of the last user message, without tool results and system reminders."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            texts = (_REMINDER_RE.sub("", t).strip() for t in _block_texts(message.get("content")))
            return "\n".join(t for t in texts if t)
        return ""

    @cached_property
    def last_tool_results(self) -> list[dict[str, Any]]:
        """tool_result blocks of the last user message (empty if it has none)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        return []

    @cached_property
    def tool_results_seen(self) -> list[SeenToolResult]:
        """`last_tool_results` with their text and the name of the tool that was called."""
        names: dict[str, str] = {}
        for message in self.messages:
            content = message.get("content")
            if message.get("role") != "assistant" or not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    names[str(block.get("id"))] = str(block.get("name", ""))
        return [
            SeenToolResult(
                tool_use_id=str(block.get("tool_use_id", "")),
                name=names.get(str(block.get("tool_use_id")), ""),
                text=_result_text(block.get("content")),
                is_error=block.get("is_error") is True,
            )
            for block in self.last_tool_results
        ]

    @property
    def offered_tools(self) -> dict[str, dict[str, Any]]:
        """The request's tool definitions by name, exactly as sent (`input_schema` and all)."""
        tools = self.body.get("tools")
        if not isinstance(tools, list):
            return {}
        return {
            t["name"]: t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
        }

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools")
        if not isinstance(tools, list):
            return []
        return [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]

    @cached_property
    def is_compaction(self) -> bool:
        """Claude Code asking for a summary of the conversation (/compact)."""
        return _COMPACTION_MARK in self.last_user_text

    @cached_property
    def conversation_texts(self) -> list[str]:
        """The user and assistant texts of the conversation, oldest first, without
        system reminders (a compaction request's own instruction left out)."""
        messages = self.messages[:-1] if self.is_compaction else self.messages
        texts: list[str] = []
        for message in messages:
            if message.get("role") not in ("user", "assistant"):
                continue
            for text in _block_texts(message.get("content")):
                text = _REMINDER_RE.sub("", text).strip()
                if text:
                    texts.append(f"{message['role']}: {text}")
        return texts

    @property
    def is_main(self) -> bool:
        """Agent-loop requests carry tools; title generation and similar side calls do
        not. Compaction requests carry tools too but are not agent turns."""
        return bool(self.tool_names) and not self.is_compaction

    @cached_property
    def working_directory(self) -> str | None:
        match = _CWD_RE.search(self.system_text)
        if match is None:
            # Fall back to the whole conversation in case a future CLI moves the block again.
            for message in self.messages:
                for text in _block_texts(message.get("content")):
                    match = _CWD_RE.search(text)
                    if match is not None:
                        break
                if match is not None:
                    break
        return match.group(1).strip() if match is not None else None

    def __repr__(self) -> str:
        # The body is ~50 kB of prompt; show what identifies the request instead.
        kind = "compaction" if self.is_compaction else "main" if self.is_main else "aux"
        return (
            f"RecordedRequest(#{self.index} {self.method} {self.path} {kind} "
            f"model={self.model!r} last_user_text={self.last_user_text[:60]!r})"
        )
