"""Trace spans a turn's events mark out: from the prompt to the model's first
token, and each tool use from its call to its result (built-in tools run
inside Claude Code, client tools on the caller's side), as children of the
span current when the prompt was sent. Spans not ended by an event end with
the turn."""

from __future__ import annotations

from opentelemetry import trace

from claudecode.v1 import agent_pb2 as pb

tracer = trace.get_tracer("ccapi.turns")

# A turn's tool spans are capped like everything else.
MAX_OPEN_TOOL_SPANS = 256


class TurnSpans:
    def __init__(self) -> None:
        self._first_token: trace.Span | None = tracer.start_span("model.first_token")
        self._tools: dict[str, trace.Span] = {}

    def observe(self, event: pb.RunTurnResponse) -> None:
        kind = event.WhichOneof("event")
        if kind in ("text_delta", "reasoning_delta", "tool_use", "tool_call_started"):
            self._end_first_token(kind)
        if kind == "tool_use":
            self._start_tool(event.tool_use.id, event.tool_use.name, "builtin")
        elif kind == "tool_call_started":
            started = event.tool_call_started
            self._start_tool(started.call_id, started.name, "client")
        elif kind == "tool_result":
            self._end_tool(event.tool_result.tool_use_id, event.tool_result.is_error)
        elif kind == "tool_call_done":
            self._end_tool(event.tool_call_done.call.call_id, False)

    def close(self) -> None:
        self._end_first_token("")
        for span in self._tools.values():
            span.end()
        self._tools.clear()

    def _end_first_token(self, kind: str) -> None:
        if self._first_token is not None:
            if kind:
                self._first_token.set_attribute("ccapi.first_event", kind)
            self._first_token.end()
            self._first_token = None

    def _start_tool(self, tool_id: str, name: str, side: str) -> None:
        if tool_id in self._tools or len(self._tools) >= MAX_OPEN_TOOL_SPANS:
            return
        self._tools[tool_id] = tracer.start_span(
            f"tool {name}", attributes={"ccapi.tool.name": name, "ccapi.tool.side": side,
                                        "ccapi.tool.id": tool_id}
        )

    def _end_tool(self, tool_id: str, failed: bool) -> None:
        span = self._tools.pop(tool_id, None)
        if span is not None:
            if failed:
                span.set_status(trace.StatusCode.ERROR)
            span.end()
