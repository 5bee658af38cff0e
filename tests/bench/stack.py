"""What the scenarios run against: one model double, cores and facades started
on demand, a home for bare CLI runs, and a way to wait until the machine is quiet."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import claude_agent_sdk
import grpc
import httpx

from claudecode.v1 import sessions_pb2, sessions_pb2_grpc
from tests.facade.gunicorn_proc import Facade, start_facade
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core

CLAUDE_CLI = Path(claude_agent_sdk.__file__).resolve().parent / "_bundled" / "claude"

# One text block in 8 deltas, 20 ms apart: "first text" and "full turn" differ by
# about 140 ms wherever the turn runs.
ANSWER = "The model double answers this benchmark turn in eight streamed pieces."
ANSWER_CHUNKS = 8
ANSWER_DELAY_S = 0.02

# Cores the scenarios ask for by name: environment overrides for `start_core`.
# Claude Code gets the same environment as the bare CLI runs (no telemetry).
CORE_VARIANTS: dict[str, dict[str, str]] = {
    "default": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
    # No tracing SDK at all: the baseline of "tracing off costs nothing".
    "untraced": {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "OTEL_SDK_DISABLED": "true"},
}

# Environment a bare `claude -p` inherits besides the model double's.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "TERM", "TMPDIR")

# Quiet = the core's process tree used at most this many clock ticks in one window.
_QUIET_WINDOW_S = 0.25
_QUIET_TICKS = 2
_SHORT_POOL_GIVE_UP_S = 2.0


class BenchError(RuntimeError):
    """A turn did not produce what the benchmark measures."""


class BenchStack:
    """Owns everything the benchmark starts; `close()` stops it all."""

    def __init__(self, log: TextIO = sys.stderr) -> None:
        self.log = log
        self.workdir = Path(tempfile.mkdtemp(prefix="ccapi-bench-"))
        self.double = ModelDouble(max_recorded=20).start()
        self.double.set_default(Reply.text(ANSWER, chunks=ANSWER_CHUNKS, delay=ANSWER_DELAY_S))
        self._cores: dict[str, CoreProcess] = {}
        self._channels: dict[str, grpc.Channel] = {}
        self._facades: dict[str, Facade] = {}
        self._http: httpx.Client | None = None
        self._bare_home = self.workdir / "bare-home"
        self._bare_home.mkdir()
        self._bare_count = 0
        self.warnings: list[str] = []
        self.context = ""  # where the run is, for warnings

    # --- parts, started on first use ----------------------------------------

    def core(self, variant: str = "default", **overrides: str) -> CoreProcess:
        """The core of `variant` (a CORE_VARIANTS name, or a new name with
        `overrides` on top of the default's environment)."""
        if variant not in self._cores:
            print(f"starting core ({variant})...", file=self.log, flush=True)
            env = {**CORE_VARIANTS.get(variant, CORE_VARIANTS["default"]), **overrides}
            self._cores[variant] = start_core(self.double.url, None, **env)
        return self._cores[variant]

    def channel(self, variant: str = "default") -> grpc.Channel:
        # One channel per core for the whole run, as a real client keeps one.
        if variant not in self._channels:
            self._channels[variant] = self.core(variant).channel()
        return self._channels[variant]

    def facade(self, variant: str = "default") -> Facade:
        if variant not in self._facades:
            core = self.core(variant)
            print(f"starting HTTP facade ({variant})...", file=self.log, flush=True)
            log_path = self.workdir / f"gunicorn-{variant}.log"
            self._facades[variant] = start_facade(
                core.addr, log_path, admin_token=core.env["CCAPI_ADMIN_TOKEN"]
            )
        return self._facades[variant]

    @property
    def http(self) -> httpx.Client:
        # Keep-alive across requests, as an SDK client would.
        if self._http is None:
            self._http = httpx.Client(timeout=httpx.Timeout(120, connect=10))
        return self._http

    def delete_session(self, session_id: str, variant: str = "default") -> None:
        """Stops the conversation's Claude Code process so sessions don't pile up."""
        stub = sessions_pb2_grpc.SessionServiceStub(self.channel(variant))
        stub.DeleteSession(
            sessions_pb2.DeleteSessionRequest(session_id=session_id),
            metadata=self.core(variant).metadata(),
            timeout=30,
        )

    # --- bare CLI -------------------------------------------------------------

    def bare_env(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        env.update(self.double.cli_env(self._bare_home, max_retries=0))
        return env

    def new_bare_workspace(self) -> Path:
        self._bare_count += 1
        path = self.workdir / f"bare-{self._bare_count}"
        path.mkdir()
        return path

    # --- quiet ----------------------------------------------------------------

    def settle(self, timeout: float = 20.0) -> float:
        """Waits until every core's pool holds its pre-started Claude Code
        process(es) and nothing in its process tree is using the CPU (a pool
        refill, a session closing). Returns the seconds waited.

        A pool that stays short while everything is idle is not refilling (the
        core refills only when a conversation takes a process): that is
        reported and not waited for."""
        started = time.monotonic()
        deadline = started + timeout
        for variant, core in self._cores.items():
            want = int(core.env.get("CCAPI_POOL_SIZE", "1") or "1")
            idle_but_short_since: float | None = None
            while True:
                if core.process.poll() is not None:
                    raise BenchError(f"core ({variant}) exited:\n{core.logs()[-3000:]}")
                claude, quiet = _tree_state(core.process.pid)
                now = time.monotonic()
                if quiet and claude >= want:
                    break
                if quiet:
                    idle_but_short_since = idle_but_short_since or now
                    if now - idle_but_short_since > _SHORT_POOL_GIVE_UP_S:
                        self.warn(
                            f"core ({variant}): pool holds {claude}/{want} Claude Code "
                            "processes and is not refilling; see its log"
                        )
                        break
                else:
                    idle_but_short_since = None
                if now > deadline:
                    self.warn(f"core ({variant}) still busy after {timeout:.0f} s")
                    break
        return time.monotonic() - started

    def warn(self, message: str) -> None:
        if self.context:
            message = f"{self.context}: {message}"
        self.warnings.append(message)
        print(f"warning: {message}", file=self.log, flush=True)

    def close(self, keep_logs: bool = False) -> None:
        """Stops everything; `keep_logs` leaves the core and gunicorn logs for a
        post-mortem and says where they are."""
        if self._http is not None:
            self._http.close()
        for channel in self._channels.values():
            channel.close()
        for facade in self._facades.values():
            facade.stop()
        for core in self._cores.values():
            core.cleanup()
            if keep_logs:
                print(f"core log kept: {core.log_path}", file=self.log)
            else:
                core.log_path.unlink(missing_ok=True)
        self.double.stop()
        if keep_logs and self._facades:
            print(f"gunicorn logs kept in {self.workdir}", file=self.log)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _tree_state(root: int) -> tuple[int, bool]:
    """(Claude Code processes under `root`, whether the tree was idle for one window)."""
    tree = _descendants(root)
    pids = [root, *tree]
    before = sum(_cpu_ticks(pid) for pid in pids)
    time.sleep(_QUIET_WINDOW_S)
    claude = sum(1 for pid in tree if _is_claude(pid))
    if sorted(_descendants(root)) != sorted(tree):
        return claude, False  # a process started or ended meanwhile
    return claude, sum(_cpu_ticks(pid) for pid in pids) - before <= _QUIET_TICKS


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_claude(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == str(CLAUDE_CLI)
    except OSError:
        return False


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # After "pid (comm)": state is fields[0], utime fields[11], stime fields[12].
    return int(fields[11]) + int(fields[12])
