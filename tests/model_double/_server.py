"""ModelDouble: a loopback HTTP server that answers like the Anthropic Messages API."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast

from ._recorded import RecordedRequest
from ._render import (
    Pause,
    auxiliary_reply,
    compaction_reply,
    count_tokens_json,
    error_body,
    message_json,
    new_message_id,
    sse_steps,
)
from ._reply import Reply

log = logging.getLogger("tests.model_double")

DEFAULT_REPLY = Reply.text("OK from the model double.")


def _status_for(error_type: str) -> int:
    return {
        "invalid_request_error": 400,
        "authentication_error": 401,
        "permission_error": 403,
        "not_found_error": 404,
        "request_too_large": 413,
        "rate_limit_error": 429,
        "overloaded_error": 529,
    }.get(error_type, 500)


class _ClientGone(Exception):
    """The client closed the connection (or the double is stopping) mid-response."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive handler threads sit in readline(); joining them would hang stop().
    block_on_close = False

    def __init__(self, address: tuple[str, int], double: ModelDouble) -> None:
        self.double = double
        # Open keep-alive connections, so stop() can cut them: otherwise a
        # connected CLI would still get answers from a stopped double.
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the client


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked SSE, like the real API
    timeout = 120  # idle keep-alive connections eventually free their thread

    @property
    def double(self) -> ModelDouble:
        return cast(_Server, self.server).double

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle + delayed ACK can hold small SSE events back ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # flushing to a client that already left

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # --- request plumbing -------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self) -> RecordedRequest:
        raw = self._read_body()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        path, _, query = self.path.partition("?")
        return RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=parsed if isinstance(parsed, dict) else {},
            received_at=time.monotonic(),
            raw_body=raw,
        )

    def _send_json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_double_{int(time.time() * 1000)}")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _pause(self, seconds: float) -> None:
        """Wait, but give up as soon as the client hangs up or the double stops."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.double._stopping.is_set():
                raise _ClientGone
            readable, _, _ = select.select([self.connection], [], [], min(0.05, remaining))
            if readable:
                # Mid-response the client has nothing to send: readable means EOF or reset.
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        raise _ClientGone
                except OSError as exc:
                    raise _ClientGone from exc

    def _write_chunk(self, data: bytes) -> None:
        try:
            # One write per event (chunk framing included) so it leaves at once.
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc

    # --- endpoints ----------------------------------------------------------

    def do_POST(self) -> None:
        request = self._record()
        if request.path == "/v1/messages":
            self._messages(request)
        elif request.path == "/v1/messages/count_tokens":
            self.double._record_other(request)
            self._send_json(200, count_tokens_json(request))
        else:
            self._unknown(request)

    def do_GET(self) -> None:
        request = self._record()
        if request.path == "/api/hello":
            # The CLI's connectivity probe (HEAD) when nonessential traffic is on.
            self.double._record_other(request)
            self._send_json(200, {"message": "hello"})
        elif request.path in ("/", "/health"):
            self.double._record_other(request)
            self._send_json(200, {"status": "ok", "service": "model double"})
        else:
            self._unknown(request)

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        self._unknown(self._record())

    do_DELETE = do_PATCH = do_PUT

    def _unknown(self, request: RecordedRequest) -> None:
        log.warning("model double: unknown endpoint %s %s", request.method, self.path)
        self.double._record_other(request, unknown=True)
        self._send_json(404, error_body("not_found_error", f"model double: no {request.path}"))

    def _messages(self, request: RecordedRequest) -> None:
        request, reply = self.double._admit(request)
        log.info("model double: %r -> %s", request, reply.kind)
        try:
            if reply.kind == "error" and not (reply.mid_stream and request.stream):
                # A mid-stream error cannot happen without a stream; the CLI's
                # non-streaming fallback request gets the equivalent HTTP error.
                status = reply.status if not reply.mid_stream else _status_for(reply.error_type)
                headers = {"x-should-retry": "true"} if status in (429, 500, 529) else {}
                if reply.retry_after is not None:
                    headers["retry-after"] = str(reply.retry_after)
                self._send_json(status, error_body(reply.error_type, reply.error_message), headers)
            elif request.stream:
                self._stream(reply, request)
            else:
                if reply.hang_seconds > 0:
                    self._pause(reply.hang_seconds)
                self._send_json(200, message_json(reply, request, new_message_id()))
        except _ClientGone:
            log.info("model double: client left during %r", request)
            self.double._record_aborted(request)
            self.close_connection = True

    def _stream(self, reply: Reply, request: RecordedRequest) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_double_{int(time.time() * 1000)}")
        self.end_headers()
        for step in sse_steps(reply, request, new_message_id()):
            if isinstance(step, Pause):
                self._pause(step.seconds)
                continue
            event, data = step
            self._write_chunk(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self._write_chunk(b"")  # zero-length chunk: end of the response body


class ModelDouble:
    """A scripted stand-in for the Anthropic Messages API on 127.0.0.1.

    Main requests (those carrying tools, i.e. the agent loop) take replies from
    the `script()` queue in arrival order, else the default. Auxiliary requests
    (title generation and the like, no tools) get a short canned answer and never
    consume the queue.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, max_recorded: int | None = None
    ) -> None:
        self._host = host
        self._port = port
        # A long-running demo would otherwise keep every ~50 kB request forever.
        self._max_recorded = max_recorded
        self._count = 0  # message requests ever received; indexes survive trimming
        self._lock = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._default: Reply = DEFAULT_REPLY
        self._auxiliary: Reply = Reply.dynamic(auxiliary_reply)
        self._compaction: Reply = Reply.dynamic(compaction_reply)
        self._requests: list[RecordedRequest] = []
        self._other: list[RecordedRequest] = []
        self._unknown: list[RecordedRequest] = []  # also in _other; logged as warnings
        self._aborted: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("ModelDouble already started")
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to one interval
            name="model-double",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # ends hangs so their threads finish promptly
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ModelDouble not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ANTHROPIC_BASE_URL."""
        return f"http://{self._host}:{self.port}"

    def cli_env(
        self, home: str | os.PathLike[str], *, max_retries: int | None = None
    ) -> dict[str, str]:
        """Environment variables pointing the Claude Code CLI at this double.

        Merge into os.environ for a subprocess, or pass as ClaudeAgentOptions.env.
        """
        env = {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "test-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "HOME": os.fspath(home),
        }
        if max_retries is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
        return env

    # --- scripting ---------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next main requests, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def set_default(self, reply: Reply | Callable[[RecordedRequest], Reply]) -> None:
        """Reply (or function of the request) used when the queue is empty."""
        with self._lock:
            self._default = reply if isinstance(reply, Reply) else Reply.dynamic(reply)

    def set_auxiliary(self, reply: Reply | Callable[[RecordedRequest], Reply]) -> None:
        """Override the answer to auxiliary (tool-less) requests."""
        with self._lock:
            self._auxiliary = reply if isinstance(reply, Reply) else Reply.dynamic(reply)

    def set_compaction(self, reply: Reply | Callable[[RecordedRequest], Reply]) -> None:
        """Override the answer to compaction requests (by default a summary quoting
        the conversation's texts); they never consume the queue."""
        with self._lock:
            self._compaction = reply if isinstance(reply, Reply) else Reply.dynamic(reply)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._default = DEFAULT_REPLY
            self._auxiliary = Reply.dynamic(auxiliary_reply)
            self._compaction = Reply.dynamic(compaction_reply)
            self._requests.clear()
            self._count = 0
            self._other.clear()
            self._unknown.clear()
            self._aborted.clear()

    # --- inspection --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every POST /v1/messages received (main and auxiliary), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_main]

    @property
    def compaction_requests(self) -> list[RecordedRequest]:
        """Requests for a compaction summary (Claude Code's /compact)."""
        return [r for r in self.requests if r.is_compaction]

    @property
    def other_requests(self) -> list[RecordedRequest]:
        """Requests to other endpoints (count_tokens, /api/hello, unknown paths)."""
        with self._lock:
            return list(self._other)

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._unknown)

    @property
    def aborted_requests(self) -> list[RecordedRequest]:
        """Message requests whose client disconnected before the response ended."""
        with self._lock:
            return list(self._aborted)

    def wait_for_requests(
        self, n: int, timeout: float = 10.0, *, main_only: bool = False
    ) -> list[RecordedRequest]:
        """Block until at least `n` (main, if main_only) message requests arrived."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if r.is_main or not main_only]

        with self._lock:
            if not self._lock.wait_for(lambda: len(matching()) >= n, timeout):
                raise TimeoutError(
                    f"model double: wanted {n} requests, got {len(matching())}: {matching()!r}"
                )
            return matching()

    def wait_for_aborted(self, n: int = 1, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until `n` requests were abandoned by their client (cancellation tests)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._aborted) >= n, timeout):
                raise TimeoutError(f"model double: wanted {n} aborted, got {self._aborted!r}")
            return list(self._aborted)

    # --- called by the handler ---------------------------------------------

    def _admit(self, request: RecordedRequest) -> tuple[RecordedRequest, Reply]:
        """Record a message request and pick its reply, atomically, so arrival order rules."""
        with self._lock:
            request = dataclasses.replace(request, index=self._count)
            self._count += 1
            self._requests.append(request)
            self._trim(self._requests)
            if request.is_compaction:
                reply = self._compaction
            elif request.is_main:
                reply = self._queue.popleft() if self._queue else self._default
            else:
                reply = self._auxiliary
            self._lock.notify_all()
        # Dynamic functions run outside the lock: they may inspect the double.
        try:
            return request, reply.resolve(request)
        except Exception as exc:  # a broken script should fail loudly, not hang the CLI
            log.exception("model double: dynamic reply failed")
            return request, Reply.error(500, "api_error", f"model double: {exc!r}")

    def _record_other(self, request: RecordedRequest, *, unknown: bool = False) -> None:
        with self._lock:
            self._other.append(request)
            self._trim(self._other)
            if unknown:
                self._unknown.append(request)
                self._trim(self._unknown)
            self._lock.notify_all()

    def _record_aborted(self, request: RecordedRequest) -> None:
        with self._lock:
            self._aborted.append(request)
            self._trim(self._aborted)
            self._lock.notify_all()

    def _trim(self, records: list[RecordedRequest]) -> None:
        # Caller holds the lock.
        if self._max_recorded is not None and len(records) > self._max_recorded:
            del records[: len(records) - self._max_recorded]
