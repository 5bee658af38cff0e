"""A request's own tools (OpenAI function calling), offered to Claude Code as an
in-process MCP server whose calls wait for the client.

How a waiting call maps to a turn that pauses
---------------------------------------------
The client's functions are the tools of one SDK MCP server per Claude Code
process (`ClientToolServer.config`). When the model calls one, Claude Code
sends `tools/call` to our handler, which registers a `PendingCall` keyed by the
Anthropic `tool_use` id (`_meta["claudecode/toolUseId"]`, also the OpenAI
`tool_calls[].id` / `call_id`) and awaits a future. Claude Code stays blocked in
that handler, inside the same turn; nothing is interrupted or resumed.

The turn pipeline watches the partial-message stream: the `content_block_start`
events of `tool_use` blocks give names and ids as the model writes them (and
`input_json_delta`s the argument pieces, which the gRPC stream forwards as
tool-call deltas). The `message_delta` with `stop_reason == "tool_use"` says that
the message is complete, so its ids are all the calls there will be;
`wait_for(ids)` then returns once every one of them reached our handler. The
turn's gRPC stream ends with the tool-calls event (finish reason TOOL_CALLS)
while the process keeps waiting. The next RunTurn of that conversation carries
the results: `deliver()` resolves each future, Claude Code hands the results to
the model as ordinary `tool_result` blocks, and that RunTurn streams the rest of
the same Claude Code turn (more tool calls, or the answer). So the model's
history stays cleanly paired: `tool_use`, then its `tool_result`.

All calls of one message must be pending together: the client answers them in
one request. Claude Code runs the handlers of several `tool_use` blocks of one
message one after another unless the tool is annotated `readOnlyHint: true`,
and one after another would deadlock (the first waits for the client, which
waits for the second). So every client tool is annotated read-only. That is a
scheduling statement to Claude Code, not a claim about the tool: the client
runs it, not us. `parallel_tool_calls: false` cannot be enforced this way; it
is a request to the model (the pipeline says so in the prompt).

Timeouts
--------
Each wait is bounded by `timeout` (the service passes
CCAPI_CLIENT_TOOL_TIMEOUT_SECONDS). When it expires the call gets an error
result ("the client did not send a result ... within N s") and `on_timeout` is
called so the turn owner can `interrupt()` the process: the issue wants the
turn interrupted and the session kept usable, and an interrupt also stops the
model from carrying on after the error. Claude Code's own limit
(`MCP_TOOL_TIMEOUT`, see `client_tool_env`) is set a minute beyond ours so it
never fires first. A cancelled handler (interrupt, or Claude Code's timeout)
removes its pending call.

A new user message instead of results
-------------------------------------
`fail_pending()` resolves every waiting call with an error result ("the client
did not run this tool"); the model sees those results and continues its turn,
and the pipeline then delivers the new user message as the next query (or
interrupts the rest of the old turn first, so the new message is answered
rather than the old one). A result for an unknown id is refused (`UnknownCall`)
before anything is delivered, so the facade can answer 400 and lose nothing.

When the waiting process is gone
--------------------------------
After a core restart or a move to another replica nothing waits any more.
The conversation then resumes from its transcript (`resume=<session>`) and
the results go in as the next user message, as text naming each call
(`resumed_results_prompt`): per the facts file a `tool_result` block sent as
a user message is dropped by the CLI. Seen with CLI 2.1.331 (the process
killed while two calls waited, then resumed; tests/core/test_client_tools_mcp.py):
the model gets its `tool_use` blocks, Claude Code's own error result for each
("[Tool call interrupted: the session ended before this call's result was
recorded, so its outcome is unknown. ...]"), an assistant "No response
requested." that Claude Code made up, and then our text with the real
results; it continues from there. Worse than the main path, so only for
when the main path is impossible. Two more things seen:

- Claude Code writes the calls to the transcript a moment after making them.
  A process killed within about a second of the calls may leave no session
  to resume ("No conversation found with session ID"); then the fallback is
  the core's history-as-text path (`conversation.transcript_prompt`) in a
  new session.
- A killed process leaves our handlers waiting (nothing cancels them), so
  `pending()` still lists the calls: the owner calls `fail_pending()` when it
  learns the process died. A graceful shutdown is different: the SDK answers
  waiting calls with errors and Claude Code asks the model once more before
  it exits, so a process with waiting calls must not be reaped as idle.

Custom tools (free-form input, e.g. Codex's apply_patch) reach Claude Code as
a function of one string, `input`, their grammar told to the model in the
description (`from_proto`); `ToolCallStream` streams that string's text as
the call's deltas, not the JSON around it.

Tools are fixed for the life of a process (Claude Code lists them once at
start and the SDK does not forward `tools/list_changed`): a request whose
tools differ (`ClientToolSet.fingerprint`) needs a new process resuming the
same session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp.types as mcp_types
from claude_agent_sdk import McpSdkServerConfig
from mcp.server import Server

from claudecode.v1 import agent_pb2 as pb
from claudecode.v1 import content_pb2 as cpb
from claudecode.v1 import events_pb2 as ev

log = logging.getLogger(__name__)

# The MCP server's name; Claude Code would prefix its tools `mcp__client__`.
SERVER_NAME = "client"
# Where Claude Code puts the Anthropic tool_use id in a tools/call request.
TOOL_USE_ID_META = "claudecode/toolUseId"
# What the model reads for a call the client answered with a new message instead.
NOT_RUN_TEXT = "the client did not run this tool"
# Claude Code's own wait (MCP_TOOL_TIMEOUT) stays this far beyond ours, so ours decides.
CLI_TIMEOUT_MARGIN_SECONDS = 60
# Pending calls one process may hold: one model message's worth, with room.
DEFAULT_MAX_PENDING = 128


@dataclass(frozen=True)
class ClientTool:
    """One tool as the client defined it; Claude Code shows it to the model as is."""

    name: str
    description: str
    # A JSON Schema object, passed to the model byte for byte.
    input_schema: Mapping[str, Any]


# A custom (free-form) tool reaches Claude Code as a function of one string.
CUSTOM_INPUT_KEY = "input"
_EMPTY_OBJECT_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


def from_proto(tool: cpb.ClientTool) -> ClientTool:
    """A request's tool as Claude Code will offer it.

    A function keeps its schema as the client wrote it. A custom tool becomes a
    function with one string argument, `input`; its format (a lark or regex
    grammar) is told to the model in the description, as nothing enforces it.
    """
    if tool.kind != cpb.CLIENT_TOOL_KIND_CUSTOM:
        schema = json.loads(tool.parameters_json) if tool.parameters_json else _EMPTY_OBJECT_SCHEMA
        return ClientTool(tool.name, tool.description, schema)
    lines = [tool.description] if tool.description else []
    lines.append(
        f"Put the tool's whole input, as free-form text, in `{CUSTOM_INPUT_KEY}` "
        "(it is passed on verbatim)."
    )
    if tool.format.type == "grammar":
        lines.append(
            f"The input must match this {tool.format.syntax} grammar:\n{tool.format.definition}"
        )
    schema = {
        "type": "object",
        "properties": {CUSTOM_INPUT_KEY: {"type": "string"}},
        "required": [CUSTOM_INPUT_KEY],
        "additionalProperties": False,
    }
    return ClientTool(tool.name, "\n\n".join(lines), schema)


def custom_input(arguments: Mapping[str, Any]) -> str:
    """What the model wrote for a custom tool (the `input` string of its call)."""
    value = arguments.get(CUSTOM_INPUT_KEY)
    return value if isinstance(value, str) else json.dumps(dict(arguments))


@dataclass(frozen=True)
class ClientToolSet:
    """The client tools of one process (fixed while it runs)."""

    tools: tuple[ClientTool, ...]
    # Each tool's kind (function or custom), by name, for streaming its calls.
    kinds: Mapping[str, cpb.ClientToolKind.ValueType] = field(default_factory=dict, compare=False)
    # The Responses "namespace" each tool was listed in, by name (calls carry it back).
    namespaces: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_request(cls, tools: Sequence[cpb.ClientTool]) -> ClientToolSet:
        return cls(
            tuple(from_proto(t) for t in tools),
            {t.name: t.kind or cpb.CLIENT_TOOL_KIND_FUNCTION for t in tools},
            {t.name: t.namespace for t in tools if t.namespace},
        )

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tools)

    def fingerprint(self) -> str:
        """Equal for equal tool sets, whatever the order: part of a process's shape."""
        canonical = sorted(
            json.dumps([t.name, t.description, t.input_schema], sort_keys=True) for t in self.tools
        )
        return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


@dataclass(frozen=True)
class ToolResult:
    """What the client's tool returned, as the model will read it."""

    text: str
    is_error: bool = False


@dataclass(frozen=True)
class PendingCall:
    """A call Claude Code is waiting on."""

    call_id: str  # the Anthropic tool_use id
    name: str  # the client's name for the tool
    arguments: Mapping[str, Any]


class UnknownCall(KeyError):
    """Results named calls that are not waiting (the ids are in `call_ids`)."""

    def __init__(self, call_ids: Sequence[str]) -> None:
        super().__init__(", ".join(call_ids))
        self.call_ids = tuple(call_ids)


@dataclass
class _Waiting:
    call: PendingCall
    future: asyncio.Future[ToolResult]


@dataclass
class ClientToolServer:
    """The in-process MCP server offering a process's client tools.

    Use from the event loop that runs the ClaudeSDKClient (the SDK calls the
    handlers there); none of the methods is thread-safe.
    """

    tool_set: ClientToolSet
    timeout: float  # seconds a call may wait for its result
    max_pending: int = DEFAULT_MAX_PENDING
    # Called (on the loop) with a call whose wait expired; the owner interrupts the turn.
    on_timeout: Callable[[PendingCall], None] | None = None
    _waiting: dict[str, _Waiting] = field(default_factory=dict, init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _server: Server[Any] = field(init=False)

    def __post_init__(self) -> None:
        self._tools = {t.name: t for t in self.tool_set.tools}
        self._server = Server(
            SERVER_NAME,
            version="1",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    def offers(self, name: str) -> bool:
        """Whether `name` (as Claude Code shows it) is one of this server's tools."""
        return tool_name_from_cli(name, self.tool_set.names) in self._tools

    @property
    def config(self) -> McpSdkServerConfig:
        """The value for `ClaudeAgentOptions.mcp_servers[SERVER_NAME]`."""
        return McpSdkServerConfig(type="sdk", name=SERVER_NAME, instance=self._server)

    # --- what the turn owner calls ---------------------------------------------

    def pending(self) -> list[PendingCall]:
        """Calls waiting for their result, in the order they arrived."""
        return [w.call for w in self._waiting.values()]

    async def wait_for(self, call_ids: Collection[str], timeout: float) -> list[PendingCall]:
        """The pending calls with these ids, once all of them arrived (TimeoutError if not)."""
        async with asyncio.timeout(timeout):
            while not all(i in self._waiting for i in call_ids):
                self._changed.clear()
                await self._changed.wait()
        return [w.call for i, w in self._waiting.items() if i in call_ids]

    def deliver(self, results: Mapping[str, ToolResult]) -> None:
        """Resolve waiting calls by id; all or nothing (UnknownCall names the strangers)."""
        unknown = [i for i in results if i not in self._waiting]
        if unknown:
            raise UnknownCall(unknown)
        # In the order of the calls, not of the client's list: Claude Code hands
        # the model results in the order they resolve.
        for call_id in [i for i in self._waiting if i in results]:
            self._resolve(call_id, results[call_id])

    def fail_pending(self, text: str = NOT_RUN_TEXT) -> list[PendingCall]:
        """Give every waiting call an error result; returns the calls failed."""
        failed = self.pending()
        for call in failed:
            self._resolve(call.call_id, ToolResult(text, is_error=True))
        return failed

    # --- MCP handlers ------------------------------------------------------------

    async def _list_tools(
        self, ctx: Any, params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        read_only = mcp_types.ToolAnnotations(read_only_hint=True)  # see module docstring
        return mcp_types.ListToolsResult(
            tools=[
                mcp_types.Tool(
                    name=t.name,
                    description=t.description,
                    input_schema=dict(t.input_schema),
                    annotations=read_only,
                )
                for t in self.tool_set.tools
            ]
        )

    async def _call_tool(
        self, ctx: Any, params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        name = tool_name_from_cli(params.name, self.tool_set.names)
        if name not in self._tools:
            return _result(ToolResult(f"unknown tool {params.name!r}", is_error=True))
        if len(self._waiting) >= self.max_pending:
            return _result(ToolResult("too many client tool calls at once", is_error=True))
        call_id = (params.meta or {}).get(TOOL_USE_ID_META)
        if not isinstance(call_id, str) or not call_id or call_id in self._waiting:
            # Without Claude Code's id the call cannot be matched to its tool_use block.
            log.warning("client tool call without a usable tool_use id: %r", call_id)
            call_id = f"call_{uuid.uuid4().hex}"
        call = PendingCall(call_id, name, dict(params.arguments or {}))
        future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = _Waiting(call, future)
        self._changed.set()
        try:
            async with asyncio.timeout(self.timeout):
                return _result(await future)
        except TimeoutError:
            log.info("client tool call %s (%s) timed out after %ss", call_id, name, self.timeout)
            if self.on_timeout is not None:
                self.on_timeout(call)
            return _result(
                ToolResult(
                    f"the client did not send a result for this call within {self.timeout:g} s",
                    is_error=True,
                )
            )
        finally:
            # Resolved, timed out, or cancelled by Claude Code (interrupt, its own timeout).
            if self._waiting.get(call_id, None) is not None:
                del self._waiting[call_id]
            self._changed.set()

    def _resolve(self, call_id: str, result: ToolResult) -> None:
        waiting = self._waiting.pop(call_id)
        if not waiting.future.done():
            waiting.future.set_result(result)
        self._changed.set()


def _result(result: ToolResult) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=result.text)], is_error=result.is_error
    )


# --- option pieces (pure) ---------------------------------------------------------


class BuiltinToolNotAllowed(ValueError):
    """The request opted in to built-in tools its key's policy does not allow."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(", ".join(names))
        self.names = tuple(names)


def builtin_tools_beside(
    client_names: Collection[str], opt_in: bool | Sequence[str], allowed: Collection[str]
) -> list[str]:
    """The value for `ClaudeAgentOptions.tools` when a request brings its own tools.

    By default none (`[]`, the CLI's `--tools ""`): the client orchestrates, and
    the model sees only the client's tools. With an opt-in, an explicit list:
    with Claude Code's default set the client's tools would only be named in a
    reminder, behind ToolSearch. A client tool named like a built-in wins.
    """
    if opt_in is False:
        return []
    if opt_in is True:
        wanted = sorted(allowed)
    else:
        refused = [n for n in opt_in if n not in allowed]
        if refused:
            raise BuiltinToolNotAllowed(refused)
        wanted = list(dict.fromkeys(opt_in))
    return [n for n in wanted if n not in client_names]


@dataclass(frozen=True)
class ClientToolOptions:
    """What ClaudeAgentOptions need for a process offering client tools."""

    tools: list[str]  # for `tools=`
    mcp_servers: dict[str, McpSdkServerConfig]  # for `mcp_servers=`
    env: dict[str, str]  # merged into `env=`


def client_tool_options(
    server: ClientToolServer, builtin_opt_in: bool | Sequence[str], allowed: Collection[str]
) -> ClientToolOptions:
    """All option pieces at once; `allowed` is what the key's tool policy allows."""
    return ClientToolOptions(
        tools=builtin_tools_beside(server.tool_set.names, builtin_opt_in, allowed),
        mcp_servers=client_tool_servers(server),
        env=client_tool_env(server.timeout),
    )


def client_tool_env(timeout: float) -> dict[str, str]:
    """Environment for a Claude Code process that offers client tools."""
    return {
        # The model, tool_use blocks and can_use_tool see the client's exact names
        # (undocumented, found in the CLI: tool_name_from_cli strips a prefix anyway).
        "CLAUDE_AGENT_SDK_MCP_NO_PREFIX": "1",
        "MCP_TOOL_TIMEOUT": str(int((timeout + CLI_TIMEOUT_MARGIN_SECONDS) * 1000)),
    }


def client_tool_servers(server: ClientToolServer) -> dict[str, McpSdkServerConfig]:
    """The value for `ClaudeAgentOptions.mcp_servers`."""
    return {SERVER_NAME: server.config}


def tool_name_from_cli(seen: str, client_names: Collection[str]) -> str:
    """The client's name for a tool as Claude Code shows it (prefixed or not)."""
    prefix = f"mcp__{SERVER_NAME}__"
    if seen not in client_names and seen.startswith(prefix):
        stripped = seen.removeprefix(prefix)
        if stripped in client_names:
            return stripped
    return seen


def resumed_results_prompt(calls: Sequence[PendingCall], results: Mapping[str, ToolResult]) -> str:
    """The user text that carries results to a session resumed from its transcript."""
    lines = ["Results of your tool calls (the earlier attempt was cut off):"]
    for call in calls:
        result = results.get(call.call_id, ToolResult(NOT_RUN_TEXT, is_error=True))
        kind = " (error)" if result.is_error else ""
        lines.append(f"{call.name} ({call.call_id}){kind}: {result.text}")
    return "\n".join(lines)


# --- streaming the calls as the model writes them (pure) ------------------------------


@dataclass
class _Streaming:
    index: int  # among this RunTurn's client tool calls
    call_id: str
    name: str
    kind: cpb.ClientToolKind.ValueType
    raw_json: str = ""  # the input_json_delta pieces so far
    sent: str = ""  # custom tools: the input text already streamed


class ToolCallStream:
    """Turns the raw Anthropic stream events of one RunTurn into client tool-call
    events: ClientToolCallStarted at a tool_use block's start, a
    ClientToolCallDelta per argument piece, ClientToolCallDone at its stop.

    Only blocks naming a client tool count (built-in tools the request opted in
    to stay with the ordinary ToolUse events). `all_known` turns true at the
    message_delta whose stop_reason is "tool_use" when the message called client
    tools: then `calls` is complete, and the turn owner waits for those ids
    (ClientToolServer.wait_for) and ends the RunTurn with them.
    """

    def __init__(
        self,
        kinds: Mapping[str, cpb.ClientToolKind.ValueType],
        namespaces: Mapping[str, str] | None = None,
    ) -> None:
        self._kinds = dict(kinds)  # client name -> kind
        self._namespaces = dict(namespaces or {})  # client name -> namespace
        self._open: dict[int, _Streaming] = {}  # content block index -> call
        self.calls: list[cpb.ClientToolCall] = []
        self.all_known = False

    @classmethod
    def for_request(cls, tools: Sequence[cpb.ClientTool]) -> ToolCallStream:
        return cls({t.name: t.kind or cpb.CLIENT_TOOL_KIND_FUNCTION for t in tools})

    def feed(self, event: Mapping[str, Any]) -> list[pb.RunTurnResponse]:
        """The events one raw stream event (StreamEvent.event) gives rise to."""
        kind = event.get("type")
        if kind == "message_start":
            self._open.clear()
        elif kind == "content_block_start":
            return self._start(event)
        elif kind == "content_block_delta":
            return self._delta(event)
        elif kind == "content_block_stop":
            return self._stop(event)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            if delta.get("stop_reason") == "tool_use" and self.calls:
                self.all_known = True
        return []

    def _start(self, event: Mapping[str, Any]) -> list[pb.RunTurnResponse]:
        block = event.get("content_block") or {}
        if block.get("type") != "tool_use":
            return []
        name = tool_name_from_cli(str(block.get("name", "")), self._kinds.keys())
        if name not in self._kinds:
            return []
        call = _Streaming(
            len(self.calls) + len(self._open), str(block.get("id", "")), name, self._kinds[name]
        )
        self._open[int(event.get("index", 0))] = call
        started = ev.ClientToolCallStarted(
            index=call.index, call_id=call.call_id, name=name, kind=call.kind
        )
        return [pb.RunTurnResponse(tool_call_started=started)]

    def _delta(self, event: Mapping[str, Any]) -> list[pb.RunTurnResponse]:
        call = self._open.get(int(event.get("index", 0)))
        delta = event.get("delta") or {}
        if call is None or delta.get("type") != "input_json_delta":
            return []
        piece = str(delta.get("partial_json", ""))
        call.raw_json += piece
        if call.kind == cpb.CLIENT_TOOL_KIND_CUSTOM:
            decoded = partial_string_value(call.raw_json, CUSTOM_INPUT_KEY)
            if decoded is None or not decoded.startswith(call.sent):
                return []
            piece, call.sent = decoded[len(call.sent) :], decoded
        if not piece:
            return []
        out = ev.ClientToolCallDelta(index=call.index, call_id=call.call_id, delta=piece)
        return [pb.RunTurnResponse(tool_call_delta=out)]

    def _stop(self, event: Mapping[str, Any]) -> list[pb.RunTurnResponse]:
        call = self._open.pop(int(event.get("index", 0)), None)
        if call is None:
            return []
        raw = call.raw_json or "{}"
        done = cpb.ClientToolCall(
            call_id=call.call_id,
            name=call.name,
            kind=call.kind,
            namespace=self._namespaces.get(call.name, ""),
        )
        responses: list[pb.RunTurnResponse] = []
        if call.kind == cpb.CLIENT_TOOL_KIND_CUSTOM:
            try:
                arguments = json.loads(raw)
            except ValueError:
                arguments = {}
            done.input = custom_input(arguments if isinstance(arguments, dict) else {})
            if done.input.startswith(call.sent) and len(done.input) > len(call.sent):
                rest = done.input[len(call.sent) :]
                responses.append(
                    pb.RunTurnResponse(
                        tool_call_delta=ev.ClientToolCallDelta(
                            index=call.index, call_id=call.call_id, delta=rest
                        )
                    )
                )
        else:
            done.arguments_json = raw  # exactly what the model wrote
        self.calls.append(done)
        responses.append(
            pb.RunTurnResponse(tool_call_done=ev.ClientToolCallDone(index=call.index, call=done))
        )
        return responses


def partial_string_value(partial_json: str, key: str) -> str | None:
    """The decoded prefix of a JSON object's first member, a string, while it streams.

    For the text `{"input": "a\\nb` it is "a", a newline, "b". None until the
    value has begun, or when the object does not start with that key. An escape
    cut in half waits for its other half, so a prefix once returned stays valid.
    """
    opening = re.match(r'\s*\{\s*"' + re.escape(key) + r'"\s*:\s*"', partial_json)
    if opening is None:
        return None
    body, i = partial_json[opening.end() :], 0
    while i < len(body) and body[i] != '"':
        if body[i] != "\\":
            i += 1
        elif i + 1 < len(body) and body[i + 1] != "u":
            i += 2
        else:
            code = body[i + 2 : i + 6]
            if len(code) < 4 or not all(c in "0123456789abcdefABCDEF" for c in code):
                break  # cut in half (or not JSON at all: the done event has the truth)
            # A high surrogate waits for its low half.
            width = 12 if 0xD800 <= int(code, 16) <= 0xDBFF else 6
            if i + width > len(body):
                break
            i += width
    try:
        decoded: str = json.loads(f'"{body[:i]}"')
    except ValueError:
        return None
    return decoded
