"""Scripted replies: what the double answers to one Messages API request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._recorded import RecordedRequest

log = logging.getLogger("tests.model_double")


@dataclass(frozen=True)
class TextBlock:
    text: str
    chunks: int | None = None  # number of text_delta events; None = about one per word


@dataclass(frozen=True)
class ThinkingBlock:
    thinking: str
    signature: str = "model-double-signature"


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: Mapping[str, Any]
    id: str | None = None  # None = a fresh id per response, so a reused Reply stays valid


Block = TextBlock | ThinkingBlock | ToolUseBlock
ReplyFn = Callable[[RecordedRequest], "Reply"]


@dataclass(frozen=True)
class Reply:
    """One answer. Build it with the class methods rather than the constructor."""

    kind: Literal["message", "error", "dynamic"]
    blocks: tuple[Block, ...] = ()
    stop_reason: str = "end_turn"
    delay: float = 0.0  # seconds between delta events
    hang_seconds: float = 0.0  # seconds to wait after message_start, before any content
    stall_seconds: float = 0.0  # seconds to wait after the first content delta, mid-stream
    usage: Mapping[str, int] | None = None  # overrides the default usage numbers
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    retry_after: int | None = None
    mid_stream: bool = False  # error: sent as an SSE `error` event after the stream began
    fn: ReplyFn | None = None

    @classmethod
    def text(
        cls,
        text: str,
        chunks: int | None = None,
        delay: float = 0.0,
        *,
        usage: Mapping[str, int] | None = None,
        stop_reason: str = "end_turn",
    ) -> Reply:
        """Plain assistant text, streamed as several text_delta events."""
        return cls("message", (TextBlock(text, chunks),), stop_reason, delay, usage=usage)

    @classmethod
    def thinking(
        cls,
        thinking: str,
        text: str,
        delay: float = 0.0,
        *,
        usage: Mapping[str, int] | None = None,
    ) -> Reply:
        """A thinking block (thinking_delta + signature_delta), then a text block."""
        return cls("message", (ThinkingBlock(thinking), TextBlock(text)), delay=delay, usage=usage)

    @classmethod
    def tool_use(
        cls,
        name: str,
        input: Mapping[str, Any],
        text_before: str | None = None,
        id: str | None = None,
        *,
        usage: Mapping[str, int] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """One tool call; "{cwd}" in string values becomes the request's working directory."""
        return cls.tool_uses([(name, input)], text_before, ids=[id], usage=usage, delay=delay)

    @classmethod
    def tool_uses(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        text_before: str | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        usage: Mapping[str, int] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Several tool calls in one assistant message (parallel tool use)."""
        id_list = list(ids) if ids is not None else [None] * len(calls)
        if len(id_list) != len(calls):
            raise ValueError("ids must match calls one to one")
        blocks: list[Block] = [TextBlock(text_before)] if text_before else []
        blocks += [ToolUseBlock(n, dict(i), t) for (n, i), t in zip(calls, id_list, strict=True)]
        return cls("message", tuple(blocks), "tool_use", delay, usage=usage)

    @classmethod
    def call_tools(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        text_before: str | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        usage: Mapping[str, int] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Like `tool_uses`, but only with tools the request offers, by their exact names.

        When a name is not in the request's `tools` (a prefix was added, the
        tool was deferred behind ToolSearch, ...) the model answers with text
        saying so instead, which makes the test's failure readable.
        """
        scripted = cls.tool_uses(calls, text_before, ids=ids, usage=usage, delay=delay)

        def checked(request: RecordedRequest) -> Reply:
            missing = [name for name, _ in calls if name not in request.offered_tools]
            if not missing:
                return scripted
            message = f"model double: not offered: {missing}; offered: {request.tool_names}"
            log.warning(message)
            return cls.text(message, chunks=1)

        return cls.dynamic(checked)

    @classmethod
    def echo_tool_results(
        cls,
        template: str = "{name}: {text}",
        separator: str = "\n",
        *,
        prefix: str = "",
        chunks: int | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Answer with what the tool results of the last user message said.

        `template` is formatted once per result with `name`, `id`, `text` and
        `error` ("error " for an is_error result, else ""); the pieces are
        joined by `separator` after `prefix`, and streamed as `Reply.text`
        streams (`chunks`, `delay`).
        """

        def echo(request: RecordedRequest) -> Reply:
            results = request.tool_results_seen
            if not results:
                return cls.text("model double: no tool results in the last user message")
            pieces = [
                template.format(
                    name=r.name, id=r.tool_use_id, text=r.text, error="error " if r.is_error else ""
                )
                for r in results
            ]
            return cls.text(prefix + separator.join(pieces), chunks, delay)

        return cls.dynamic(echo)

    @classmethod
    def error(cls, status: int, type: str, message: str, retry_after: int | None = None) -> Reply:
        """An HTTP error answer: {"type": "error", "error": {"type": ..., "message": ...}}."""
        return cls(
            "error", status=status, error_type=type, error_message=message, retry_after=retry_after
        )

    @classmethod
    def stream_error(cls, type: str, message: str, text_before: str = "") -> Reply:
        """HTTP 200 and a started stream (optionally some text), then an SSE `error` event."""
        blocks = (TextBlock(text_before),) if text_before else ()
        return cls("error", blocks, error_type=type, error_message=message, mid_stream=True)

    @classmethod
    def hang(cls, seconds: float, text: str = "Finished after hanging.") -> Reply:
        """Start the stream (message_start, ping), wait `seconds`, then stream `text`.

        The wait ends early when the client disconnects or the double stops;
        `ModelDouble.aborted_requests` lists requests whose client went away.
        """
        return cls("message", (TextBlock(text),), hang_seconds=seconds)

    @classmethod
    def stall(cls, seconds: float, text: str = "Half an answer and then silence.") -> Reply:
        """Stream the first piece of `text`, wait `seconds` mid-block with the
        connection open and nothing sent, then the rest.

        The wait ends early when the client disconnects or the double stops.
        """
        return cls("message", (TextBlock(text),), stall_seconds=seconds)

    @classmethod
    def dynamic(cls, fn: ReplyFn) -> Reply:
        """Decide per request, e.g. `Reply.dynamic(lambda r: Reply.text(r.last_user_text))`."""
        return cls("dynamic", fn=fn)

    def resolve(self, request: RecordedRequest) -> Reply:
        """Follow dynamic replies down to a concrete one."""
        reply = self
        for _ in range(16):  # a guard against fn returning itself forever
            if reply.kind != "dynamic" or reply.fn is None:
                return reply
            reply = reply.fn(request)
        raise RuntimeError("Reply.dynamic nested too deeply")
