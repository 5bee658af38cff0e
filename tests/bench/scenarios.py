"""The registry: what `make bench` measures and which rows it compares.

A scenario runs one conversation per round: a NEW conversation, then a
FOLLOW-UP turn in the same session. Each phase gives one `Timing` (first text,
full turn). To add a row, subclass `Scenario` (or reuse one with another core
variant from `stack.CORE_VARIANTS`) and append it to `SCENARIOS`; to report a
ratio, append a `Comparison` to `COMPARISONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.bench.measure import (
    BENCH_TOOL,
    TOOL_RESULT,
    Timing,
    Turn,
    bare_cli_turn,
    grpc_turn,
    http_tool_call,
    http_tool_results_turn,
    http_turn,
)
from tests.bench.stack import ANSWER, ANSWER_CHUNKS, ANSWER_DELAY_S, BenchError, BenchStack
from tests.model_double import Reply

NEW = "new"
FOLLOW_UP = "follow-up"
PHASES = (NEW, FOLLOW_UP)

MetricName = Literal["first_text_s", "full_turn_s"]
METRICS: tuple[MetricName, ...] = ("first_text_s", "full_turn_s")


class Scenario:
    """One way of running a conversation; `key` names its rows."""

    key: str
    title: str

    def prepare(self, stack: BenchStack) -> None:
        """Starts what the scenario needs, before anything is timed."""

    def turn(self, stack: BenchStack, text: str, session_id: str) -> Turn:
        """One timed turn; `session_id` empty for a new conversation."""
        raise NotImplementedError

    def finish(self, stack: BenchStack, session_id: str) -> None:
        """Releases the conversation after the round (untimed)."""

    def run_round(self, stack: BenchStack, label: str) -> dict[str, Timing]:
        stack.settle()
        new = self.turn(stack, f"{label}: a new conversation, please answer", "")
        try:
            stack.settle()  # the pool refill a new conversation starts is not the follow-up's
            follow = self.turn(stack, f"{label}: a follow-up, please answer", new.session_id)
        finally:
            self.finish(stack, new.session_id)
        return {NEW: new.timing, FOLLOW_UP: follow.timing}


@dataclass
class CoreGrpc(Scenario):
    """AgentService.RunTurn on the core (pooled process for a new conversation)."""

    key: str = "core-grpc"
    title: str = "core, gRPC stream"
    core: str = "default"

    def prepare(self, stack: BenchStack) -> None:
        stack.channel(self.core)

    def turn(self, stack: BenchStack, text: str, session_id: str) -> Turn:
        return grpc_turn(
            stack.channel(self.core), stack.core(self.core).metadata(), text, session_id
        )

    def finish(self, stack: BenchStack, session_id: str) -> None:
        stack.delete_session(session_id, self.core)


@dataclass
class HttpFacade(Scenario):
    """Streaming POST /v1/chat/completions through gunicorn in front of the core."""

    key: str = "http-facade"
    title: str = "HTTP facade, SSE"
    core: str = "default"

    def prepare(self, stack: BenchStack) -> None:
        stack.facade(self.core)

    def turn(self, stack: BenchStack, text: str, session_id: str) -> Turn:
        return http_turn(
            stack.http,
            stack.facade(self.core).base_url,
            stack.core(self.core).api_key,
            text,
            session_id,
        )

    def finish(self, stack: BenchStack, session_id: str) -> None:
        stack.delete_session(session_id, self.core)


@dataclass
class ClientToolResults(HttpFacade):
    """HTTP facade with a client tool: a new conversation (timed as NEW), then,
    untimed, a follow-up whose answer calls the client's tool; FOLLOW_UP is the
    request carrying the tool's result. The turn that waited for it just
    continues (no resume), so it should cost what a plain follow-up costs."""

    key: str = "client-tools"
    title: str = "HTTP facade, SSE, tool results"

    def run_round(self, stack: BenchStack, label: str) -> dict[str, Timing]:
        facade, core = stack.facade(self.core), stack.core(self.core)
        stack.settle()
        new = self.turn(stack, f"{label}: a new conversation, please answer", "")
        try:
            stack.settle()
            tool = BENCH_TOOL["function"]["name"]
            stack.double.script(
                Reply.call_tools([(tool, {"q": label})]),
                # The same streamed shape as the plain answer, so the rows compare.
                Reply.echo_tool_results(
                    prefix=f"{ANSWER} ", chunks=ANSWER_CHUNKS, delay=ANSWER_DELAY_S
                ),
            )
            messages = http_tool_call(
                stack.http, facade.base_url, core.api_key, f"{label}: look it up", new.session_id
            )
            stack.settle()  # the call is waiting; only the results request is timed
            results = http_tool_results_turn(stack.http, facade.base_url, core.api_key, messages)
            if TOOL_RESULT not in results.text:
                raise BenchError(f"the tool result did not reach the model: {results.text!r}")
        finally:
            self.finish(stack, new.session_id)
        return {NEW: new.timing, FOLLOW_UP: results.timing}


@dataclass
class BareCli(Scenario):
    """A `claude -p` process per turn, as wrappers without a pool do; a follow-up
    is `--resume` in the same directory."""

    key: str = "bare-cli"
    title: str = "bare claude -p"

    def __post_init__(self) -> None:
        self._cwd: dict[str, Path] = {}

    def turn(self, stack: BenchStack, text: str, session_id: str) -> Turn:
        cwd = self._cwd.pop(session_id) if session_id else stack.new_bare_workspace()
        turn = bare_cli_turn(stack.bare_env(), cwd, text, session_id)
        self._cwd[turn.session_id] = cwd
        return turn

    def finish(self, stack: BenchStack, session_id: str) -> None:
        self._cwd.pop(session_id, None)


@dataclass(frozen=True)
class Metric:
    scenario: str
    phase: str
    metric: MetricName


@dataclass(frozen=True)
class Comparison:
    """median(numerator) / median(denominator); `target_max` is reported, never enforced."""

    label: str
    numerator: Metric
    denominator: Metric
    target_max: float | None = None


SCENARIOS: list[Scenario] = [
    CoreGrpc(),
    BareCli(),
    HttpFacade(),
    CoreGrpc(key="core-untraced", title="core, gRPC stream, no tracing SDK", core="untraced"),
    ClientToolResults(),
]


def _vs(
    label: str, a: str, b: str, phase: str, metric: MetricName, target_max: float | None = None
) -> Comparison:
    return Comparison(label, Metric(a, phase, metric), Metric(b, phase, metric), target_max)


COMPARISONS: list[Comparison] = [
    _vs(
        "core / bare CLI, new conversation, first text",
        "core-grpc",
        "bare-cli",
        NEW,
        "first_text_s",
        target_max=0.5,
    ),
    _vs(
        "core / bare CLI, new conversation, full turn", "core-grpc", "bare-cli", NEW, "full_turn_s"
    ),
    _vs(
        "core / bare CLI, follow-up, first text", "core-grpc", "bare-cli", FOLLOW_UP, "first_text_s"
    ),
    _vs("core / bare CLI, follow-up, full turn", "core-grpc", "bare-cli", FOLLOW_UP, "full_turn_s"),
    _vs(
        "HTTP facade / gRPC, new conversation, first text",
        "http-facade",
        "core-grpc",
        NEW,
        "first_text_s",
    ),
    _vs(
        "HTTP facade / gRPC, follow-up, first text",
        "http-facade",
        "core-grpc",
        FOLLOW_UP,
        "first_text_s",
    ),
    _vs(
        "HTTP facade / gRPC, new conversation, full turn",
        "http-facade",
        "core-grpc",
        NEW,
        "full_turn_s",
    ),
    # Tracing off (the default: ids made, nothing recorded) against no SDK at all.
    _vs(
        "tracing off / no tracing SDK, follow-up, full turn",
        "core-grpc",
        "core-untraced",
        FOLLOW_UP,
        "full_turn_s",
        target_max=1.05,
    ),
    _vs(
        "tracing off / no tracing SDK, new conversation, first text",
        "core-grpc",
        "core-untraced",
        NEW,
        "first_text_s",
        target_max=1.05,
    ),
    # The waiting turn continues where it stopped: no process resume, no new turn.
    _vs(
        "tool results / plain follow-up (HTTP), first text",
        "client-tools",
        "http-facade",
        FOLLOW_UP,
        "first_text_s",
        target_max=1.1,
    ),
]
