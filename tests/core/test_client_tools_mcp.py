"""Client tools served to the real Claude Code CLI by our in-process MCP server:
calls wait for results delivered from outside, and the model reads them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import claude_agent_sdk
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    Message,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    ToolPermissionContext,
)
from claude_agent_sdk.types import StreamEvent

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from core_service.agent.client_tools import (
    NOT_RUN_TEXT,
    BuiltinToolNotAllowed,
    ClientTool,
    ClientToolServer,
    ClientToolSet,
    PendingCall,
    ToolCallStream,
    ToolResult,
    builtin_tools_beside,
    client_tool_env,
    client_tool_options,
    custom_input,
    from_proto,
    resumed_results_prompt,
    tool_name_from_cli,
)
from core_service.agent.permissions import ALLOWED_BY_DEFAULT
from tests.model_double import ModelDouble, Reply

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
needs_cli = pytest.mark.skipif(not CLAUDE.exists(), reason="bundled Claude Code CLI missing")

LOOKUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "q": {"type": "string", "description": "what to look up"},
        "scope": {"type": "string", "enum": ["web", "docs"]},
        "filters": {
            "type": "object",
            "properties": {"year": {"type": "integer"}},
            "additionalProperties": False,
        },
    },
    "required": ["q"],
    "additionalProperties": False,
}
TOOLS = ClientToolSet(
    (
        ClientTool("lookup", "Look something up.", LOOKUP_SCHEMA),
        # A bare object schema: the SDK's @tool decorator would invent a property here.
        ClientTool("get_weather", "Weather for a city.", {"type": "object"}),
    )
)


@pytest.fixture
def double() -> Iterator[ModelDouble]:
    with ModelDouble() as started:
        yield started


@dataclass
class Turn:
    """One query's messages, read in the background, and the tool_use ids of the
    model message that stopped for tools (known at its message_delta)."""

    stream: ToolCallStream
    messages: list[Message] = field(default_factory=list)
    streamed_calls: dict[str, str] = field(default_factory=dict)  # id -> name
    all_calls_known: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[pb.RunTurnResponse] = field(default_factory=list)  # client tool-call events

    async def read(self, client: ClaudeSDKClient) -> ResultMessage:
        async for message in client.receive_response():
            self.messages.append(message)
            if isinstance(message, StreamEvent):
                event = message.event
                self.events += self.stream.feed(event)
                block = event.get("content_block") or {}
                if event["type"] == "content_block_start" and block.get("type") == "tool_use":
                    self.streamed_calls[block["id"]] = block["name"]
                delta = event.get("delta") or {}
                if event["type"] == "message_delta" and delta.get("stop_reason") == "tool_use":
                    self.all_calls_known.set()
        result = self.messages[-1]
        assert isinstance(result, ResultMessage)
        return result


@dataclass
class Session:
    client: ClaudeSDKClient
    server: ClientToolServer
    asked: list[str]
    kinds: dict[str, cpb.ClientToolKind.ValueType]

    async def start_turn(self, prompt: str) -> tuple[Turn, asyncio.Task[ResultMessage]]:
        turn = Turn(ToolCallStream(self.kinds))
        await self.client.query(prompt)
        return turn, asyncio.create_task(turn.read(self.client))

    async def calls_of(self, turn: Turn) -> list[PendingCall]:
        """What the turn pipeline does: all calls known, then all of them waiting."""
        await asyncio.wait_for(turn.all_calls_known.wait(), 60)
        return await self.server.wait_for(turn.streamed_calls, timeout=30)


@pytest.fixture
async def session(double: ModelDouble, tmp_path: Path) -> AsyncIterator[Session]:
    async with open_session(double, tmp_path, timeout=120) as opened:
        yield opened


def open_session(
    double: ModelDouble,
    tmp_path: Path,
    timeout: float,
    *,
    no_prefix: bool = True,
    tools: ClientToolSet = TOOLS,
    kinds: dict[str, cpb.ClientToolKind.ValueType] | None = None,
) -> _Opener:
    return _Opener(double, tmp_path, timeout, no_prefix, tools, kinds)


class _Opener:
    def __init__(
        self,
        double: ModelDouble,
        tmp_path: Path,
        timeout: float,
        no_prefix: bool,
        tools: ClientToolSet,
        kinds: dict[str, cpb.ClientToolKind.ValueType] | None,
    ) -> None:
        self.double, self.tmp_path, self.timeout = double, tmp_path, timeout
        self.no_prefix, self.tools = no_prefix, tools
        self.kinds = kinds or {name: cpb.CLIENT_TOOL_KIND_FUNCTION for name in tools.names}
        self.timed_out: list[PendingCall] = []
        self.resume: str | None = None  # a session id to resume

    async def __aenter__(self) -> Session:
        workspace, home = self.tmp_path / "ws", self.tmp_path / "home"
        workspace.mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        server = ClientToolServer(
            self.tools, timeout=self.timeout, on_timeout=self.timed_out.append
        )
        pieces = client_tool_options(server, False, ALLOWED_BY_DEFAULT)
        if not self.no_prefix:
            del pieces.env["CLAUDE_AGENT_SDK_MCP_NO_PREFIX"]
        asked: list[str] = []

        async def permit(
            name: str, tool_input: dict[str, Any], context: ToolPermissionContext
        ) -> PermissionResultAllow | PermissionResultDeny:
            asked.append(name)
            if server.offers(name):
                return PermissionResultAllow()
            return PermissionResultDeny(message=f"{name} is not allowed here")

        options = ClaudeAgentOptions(
            cwd=str(workspace),
            include_partial_messages=True,
            permission_mode="default",
            can_use_tool=permit,
            # As in core_service.agent.options.build_options.
            sandbox={
                "enabled": True,
                "autoAllowBashIfSandboxed": False,
                "allowUnsandboxedCommands": False,
            },
            setting_sources=[],
            tools=pieces.tools,
            mcp_servers=dict(pieces.mcp_servers),
            env={**self.double.cli_env(home, max_retries=0), **pieces.env},
        )
        if self.resume:
            options.resume = self.resume
        self.client = ClaudeSDKClient(options)
        await self.client.connect()
        return Session(self.client, server, asked, self.kinds)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()


def call_index(event: pb.RunTurnResponse) -> int:
    """ClientToolCallStarted/Delta/Done.index of a tool-call event."""
    payload = getattr(event, event.WhichOneof("event") or "")
    return int(payload.index)


def final_text(result: ResultMessage) -> str:
    assert not result.is_error, result
    return result.result or ""


@needs_cli
async def test_two_calls_wait_together_and_their_results_reach_the_model(
    double: ModelDouble, session: Session
) -> None:
    double.script(
        Reply.call_tools(
            [("lookup", {"q": "tides", "filters": {"year": 2026}}), ("get_weather", {"c": "Oslo"})],
            text_before="Let me check both.",
        ),
        Reply.echo_tool_results("{name} said {text}", " / ", prefix="Answer: "),
    )
    turn, reading = await session.start_turn("tides and weather please")
    calls = await session.calls_of(turn)

    # The client's exact names and the model's own tool_use ids, both calls at once.
    assert [(c.name, dict(c.arguments)) for c in calls] == [
        ("lookup", {"q": "tides", "filters": {"year": 2026}}),
        ("get_weather", {"c": "Oslo"}),
    ]
    assert {c.call_id: c.name for c in calls} == turn.streamed_calls
    assert session.server.pending() == calls
    # The tool-call events a RunTurn streams: start, argument pieces, done, per call.
    assert turn.stream.all_known
    kinds = [e.WhichOneof("event") for e in turn.events]
    assert kinds[0] == "tool_call_started" and kinds.count("tool_call_done") == 2
    for index, call in enumerate(calls):
        mine = [e for e in turn.events if call_index(e) == index]
        assert mine[0].tool_call_started.call_id == call.call_id
        pieces = [e.tool_call_delta.delta for e in mine if e.HasField("tool_call_delta")]
        assert len(pieces) >= 2 and json.loads("".join(pieces)) == call.arguments
        done = mine[-1].tool_call_done.call
        assert (done.call_id, done.name, done.arguments_json) == (
            call.call_id,
            call.name,
            "".join(pieces),
        )
    assert [c.call_id for c in turn.stream.calls] == [c.call_id for c in calls]
    assert not reading.done(), "the turn must wait for the client"

    session.server.deliver(
        {calls[1].call_id: ToolResult("sunny, 4 C"), calls[0].call_id: ToolResult("high at 6")}
    )
    result = await asyncio.wait_for(reading, 60)
    # Claude Code lists results in the order the calls resolved, which two
    # results delivered at once do not fix: both must reach the model.
    text = final_text(result)
    assert text.startswith("Answer: ")
    assert sorted(text.removeprefix("Answer: ").split(" / ")) == [
        "get_weather said sunny, 4 C",
        "lookup said high at 6",
    ]
    assert session.server.pending() == []
    assert sorted(session.asked) == ["get_weather", "lookup"]

    first = double.main_requests[0]
    # Only the client's tools (tools=[]), under their own names, schemas byte for byte.
    assert {"lookup", "get_weather"} <= set(first.tool_names)
    assert set(first.tool_names) - {"lookup", "get_weather"} <= {"DeferredToolPlaceholder"}
    offered = first.offered_tools
    assert json.dumps(offered["lookup"]["input_schema"]) == json.dumps(LOOKUP_SCHEMA)
    assert offered["get_weather"]["input_schema"] == {"type": "object"}
    assert offered["lookup"]["description"] == "Look something up."
    second = double.main_requests[1]
    # In whichever order they resolved (see above), each once, neither an error.
    assert sorted((r.tool_use_id, r.is_error) for r in second.tool_results_seen) == sorted(
        [(calls[0].call_id, False), (calls[1].call_id, False)]
    )


@needs_cli
async def test_unknown_ids_are_refused_and_nothing_is_delivered(
    double: ModelDouble, session: Session
) -> None:
    double.script(Reply.call_tools([("lookup", {"q": "x"})]), Reply.echo_tool_results())
    turn, reading = await session.start_turn("look")
    (call,) = await session.calls_of(turn)
    with pytest.raises(KeyError) as refused:
        session.server.deliver({call.call_id: ToolResult("a"), "toolu_nope": ToolResult("b")})
    assert "toolu_nope" in str(refused.value)
    assert session.server.pending() == [call]
    session.server.deliver({call.call_id: ToolResult("found it")})
    assert final_text(await asyncio.wait_for(reading, 60)) == "lookup: found it"


@needs_cli
async def test_a_new_message_instead_of_results_fails_the_pending_calls(
    double: ModelDouble, session: Session
) -> None:
    double.script(
        Reply.call_tools([("lookup", {"q": "x"}), ("get_weather", {})]),
        Reply.echo_tool_results("{name}: {error}{text}", "; "),
        Reply.dynamic(lambda r: Reply.text(f"new: {r.last_user_text}")),
    )
    turn, reading = await session.start_turn("look")
    assert len(await session.calls_of(turn)) == 2
    failed = session.server.fail_pending()
    assert [c.name for c in failed] == ["lookup", "get_weather"]
    assert final_text(await asyncio.wait_for(reading, 60)) == (
        f"lookup: error {NOT_RUN_TEXT}; get_weather: error {NOT_RUN_TEXT}"
    )
    # The session carries on with the new message.
    _, next_reading = await session.start_turn("something else")
    assert final_text(await asyncio.wait_for(next_reading, 60)) == "new: something else"


@needs_cli
async def test_a_call_nobody_answers_times_out_with_an_error_result(
    double: ModelDouble, tmp_path: Path
) -> None:
    double.script(Reply.call_tools([("get_weather", {})]), Reply.echo_tool_results())
    opener = open_session(double, tmp_path, timeout=2)
    async with opener as session:
        turn, reading = await session.start_turn("weather")
        (call,) = await session.calls_of(turn)
        result = await asyncio.wait_for(reading, 60)
        assert final_text(result) == (
            "get_weather: the client did not send a result for this call within 2 s"
        )
        assert opener.timed_out == [call] and session.server.pending() == []
        assert double.main_requests[1].tool_results_seen[0].is_error


@needs_cli
async def test_an_interrupt_cancels_the_wait_and_the_session_stays_usable(
    double: ModelDouble, session: Session
) -> None:
    double.script(Reply.call_tools([("lookup", {"q": "x"})]), Reply.text("after the interrupt"))
    turn, reading = await session.start_turn("look")
    await session.calls_of(turn)
    await session.client.interrupt()
    interrupted = await asyncio.wait_for(reading, 60)
    assert interrupted.subtype == "error_during_execution"
    for _ in range(100):  # the handler's cancellation lands a moment after the result
        if not session.server.pending():
            break
        await asyncio.sleep(0.05)
    assert session.server.pending() == []
    _, next_reading = await session.start_turn("again")
    assert final_text(await asyncio.wait_for(next_reading, 60)) == "after the interrupt"


@needs_cli
async def test_prefixed_names_still_map_to_the_clients_names(
    double: ModelDouble, tmp_path: Path
) -> None:
    """The fallback if a CLI stops honouring CLAUDE_AGENT_SDK_MCP_NO_PREFIX."""
    double.script(
        Reply.call_tools([("mcp__client__lookup", {"q": "x"})]), Reply.echo_tool_results()
    )
    async with open_session(double, tmp_path, timeout=60, no_prefix=False) as session:
        turn, reading = await session.start_turn("look")
        (call,) = await session.calls_of(turn)
        assert call.name == "lookup"
        assert turn.streamed_calls == {call.call_id: "mcp__client__lookup"}
        session.server.deliver({call.call_id: ToolResult("found")})
        assert final_text(await asyncio.wait_for(reading, 60)) == "mcp__client__lookup: found"
        assert session.asked == ["mcp__client__lookup"]
        assert "mcp__client__get_weather" in double.main_requests[0].tool_names


# --- the option pieces, no CLI ---------------------------------------------------


def test_builtin_tools_beside_client_tools() -> None:
    allowed = {"Read", "Bash", "Grep"}
    assert builtin_tools_beside({"lookup"}, False, allowed) == []
    assert builtin_tools_beside({"lookup"}, True, allowed) == ["Bash", "Grep", "Read"]
    # A client tool named like a built-in wins.
    assert builtin_tools_beside({"Bash"}, True, allowed) == ["Grep", "Read"]
    assert builtin_tools_beside({"x"}, ["Read", "Read", "Bash"], allowed) == ["Read", "Bash"]
    with pytest.raises(BuiltinToolNotAllowed) as refused:
        builtin_tools_beside({"x"}, ["Read", "WebFetch", "Cron"], allowed)
    assert refused.value.names == ("WebFetch", "Cron")


def test_env_prefix_and_fingerprint() -> None:
    assert client_tool_env(900) == {
        "CLAUDE_AGENT_SDK_MCP_NO_PREFIX": "1",
        "MCP_TOOL_TIMEOUT": "960000",  # a minute beyond ours: our timeout decides
    }
    names = {"lookup", "mcp__client__x"}
    assert tool_name_from_cli("mcp__client__lookup", names) == "lookup"
    assert tool_name_from_cli("lookup", names) == "lookup"
    assert tool_name_from_cli("mcp__client__x", names) == "mcp__client__x"
    assert tool_name_from_cli("mcp__other__lookup", names) == "mcp__other__lookup"
    reordered = ClientToolSet(tuple(reversed(TOOLS.tools)))
    assert reordered.fingerprint() == TOOLS.fingerprint()
    changed = ClientToolSet((TOOLS.tools[0], ClientTool("get_weather", "Other.", {})))
    assert changed.fingerprint() != TOOLS.fingerprint()


def test_resumed_results_prompt_names_every_call() -> None:
    calls = [PendingCall("toolu_a", "lookup", {}), PendingCall("toolu_b", "get_weather", {})]
    prompt = resumed_results_prompt(calls, {"toolu_a": ToolResult("high at 6")})
    assert prompt.splitlines()[1:] == [
        "lookup (toolu_a): high at 6",
        f"get_weather (toolu_b) (error): {NOT_RUN_TEXT}",
    ]


@needs_cli
async def test_a_custom_tool_takes_free_text_and_streams_it(
    double: ModelDouble, tmp_path: Path
) -> None:
    patch = cpb.ClientTool(
        name="apply_patch",
        description="Edit files.",
        kind=cpb.CLIENT_TOOL_KIND_CUSTOM,
        format=cpb.CustomToolFormat(type="grammar", syntax="lark", definition="start: /.+/s"),
    )
    tools = ClientToolSet.from_request([patch])
    text = '*** Begin Patch\n*** Add File: a.txt\n+caf\u00e9 "x"\n*** End Patch'
    double.script(Reply.call_tools([("apply_patch", {"input": text})]), Reply.echo_tool_results())
    kinds = {"apply_patch": cpb.CLIENT_TOOL_KIND_CUSTOM}
    async with open_session(double, tmp_path, timeout=60, tools=tools, kinds=kinds) as session:
        turn, reading = await session.start_turn("patch it")
        (call,) = await session.calls_of(turn)
        assert custom_input(call.arguments) == text
        pieces = [e.tool_call_delta.delta for e in turn.events if e.HasField("tool_call_delta")]
        assert "".join(pieces) == text and len(pieces) >= 2
        (done,) = [e.tool_call_done.call for e in turn.events if e.HasField("tool_call_done")]
        assert (done.kind, done.input, done.arguments_json) == (
            cpb.CLIENT_TOOL_KIND_CUSTOM,
            text,
            "",
        )
        session.server.deliver({call.call_id: ToolResult("Done!")})
        assert final_text(await asyncio.wait_for(reading, 60)) == "apply_patch: Done!"
    offered = double.main_requests[0].offered_tools["apply_patch"]
    assert offered["input_schema"]["required"] == ["input"]
    assert offered["description"].startswith("Edit files.")
    assert "lark grammar:\nstart: /.+/s" in offered["description"]


def test_stream_events_for_client_calls_only() -> None:
    stream = ToolCallStream({"lookup": cpb.CLIENT_TOOL_KIND_FUNCTION})
    raw: list[dict[str, Any]] = [
        {"type": "message_start", "message": {}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_r", "name": "Read"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_l", "name": "mcp__client__lookup"},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
    ]
    events = [e for item in raw for e in stream.feed(item)]
    assert [e.WhichOneof("event") for e in events] == [
        "tool_call_started",
        "tool_call_delta",
        "tool_call_delta",
        "tool_call_done",
    ]
    assert events[0].tool_call_started.name == "lookup"  # the client's spelling
    assert events[-1].tool_call_done.call == cpb.ClientToolCall(
        call_id="toolu_l",
        name="lookup",
        kind=cpb.CLIENT_TOOL_KIND_FUNCTION,
        arguments_json='{"q": "x"}',
    )
    assert stream.all_known and len(stream.calls) == 1


def test_from_proto() -> None:
    schema = '{"type":"object","properties":{"n":{"type":"integer"}}}'
    function = from_proto(cpb.ClientTool(name="f", description="F.", parameters_json=schema))
    assert (function.name, function.description) == ("f", "F.")
    assert json.dumps(function.input_schema, separators=(",", ":")) == schema
    assert from_proto(cpb.ClientTool(name="g")).input_schema == {"type": "object", "properties": {}}
    free = from_proto(cpb.ClientTool(name="c", kind=cpb.CLIENT_TOOL_KIND_CUSTOM))
    assert free.input_schema["properties"] == {"input": {"type": "string"}}
    assert "grammar" not in free.description
    assert custom_input({"input": "raw"}) == "raw"


def claude_processes(home: Path) -> list[int]:
    """Our Claude Code child processes running with this HOME."""
    pids = []
    for child in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # already gone
        if f"HOME={home}".encode() in environ:
            pids.append(int(child))
    return pids


async def transcript_holding(home: Path, texts: list[str], timeout: float = 20) -> Path:
    """The session transcript once Claude Code has written all of `texts` into it."""
    for _ in range(int(timeout / 0.1)):
        for path in (home / ".claude" / "projects").glob("*/*.jsonl"):
            content = path.read_text()
            if all(t in content for t in texts):
                return path
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no transcript with {texts}")


@needs_cli
async def test_results_reach_a_resumed_session_when_the_waiting_process_died(
    double: ModelDouble, tmp_path: Path
) -> None:
    """The fallback of the module docstring, and what the model then sees."""
    double.script(
        Reply.call_tools([("lookup", {"q": "x"}), ("get_weather", {})], ids=["toolu_a", "toolu_b"]),
        Reply.dynamic(lambda r: Reply.text(f"got: {r.last_user_text}")),
    )
    first = open_session(double, tmp_path, timeout=60)
    session = await first.__aenter__()
    turn, reading = await session.start_turn("look")
    calls = await session.calls_of(turn)
    transcript = await transcript_holding(tmp_path / "home", ["toolu_a", "toolu_b"])
    (pid,) = claude_processes(tmp_path / "home")
    os.kill(pid, signal.SIGKILL)  # a core restart, as far as this session can tell
    with pytest.raises(claude_agent_sdk.ProcessError):
        await asyncio.wait_for(reading, 30)
    # Nothing waits any more, but our server cannot know: its owner gives up on the calls.
    assert session.server.fail_pending() == calls
    with contextlib.suppress(claude_agent_sdk.ClaudeSDKError):  # the process is already gone
        await first.__aexit__(None, None, None)

    again = open_session(double, tmp_path, timeout=60)
    again.resume = transcript.stem
    results = {"toolu_a": ToolResult("found A"), "toolu_b": ToolResult("sunny", is_error=True)}
    prompt = resumed_results_prompt(calls, results)
    async with again as resumed:
        _, next_reading = await resumed.start_turn(prompt)
        assert final_text(await asyncio.wait_for(next_reading, 60)) == f"got: {prompt}"
    history = double.main_requests[-1].messages
    calls_seen = [
        b["id"]
        for m in history
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    ]
    assert calls_seen == ["toolu_a", "toolu_b"]
    # Claude Code closed the calls itself, with error results, before our text.
    rejected = [
        (b["tool_use_id"], b.get("is_error"))
        for m in history
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert rejected == [("toolu_a", True), ("toolu_b", True)]
    assert prompt.splitlines()[1:] == [
        "lookup (toolu_a): found A",
        "get_weather (toolu_b) (error): sunny",
    ]
