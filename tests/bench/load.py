"""Load rows of `make bench` (issue 11), each run once after the round-robin:

- burst: N new conversations at once through the HTTP facade, against N bare
  `claude -p` processes started at once: median first text and wall time to
  finish all, as ratios;
- memory: PSS of the core and all its Claude Code children after N/2 and
  after N short conversations in a row on a core with a live-process cap,
  against the memory budget that cap implies;
- sustained: new conversations arriving at a fixed rate above capacity for a
  while: every 5xx other than the documented 503 (`overloaded`) counts as an
  error; the p95 first text of the admitted turns.

`SIZES` picks how big (`BENCH_LOAD=full`, the default; `smoke` for the
suite's tiny version; `0` skips the rows).
"""

from __future__ import annotations

import concurrent.futures
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc
import httpx

from core_service.machine import PROCESS_PSS_BYTES
from tests.bench.measure import Turn, bare_cli_turn, grpc_turn, http_turn
from tests.bench.stack import BenchError, BenchStack
from tests.procmem import claude_count, tree_pss_bytes

MIB = 1024 * 1024
# The per-process size the core's default cap is derived from.
PROCESS_PSS_MIB = PROCESS_PSS_BYTES // MIB


@dataclass(frozen=True)
class LoadSizes:
    burst: int
    conversations: int
    sustained_seconds: float
    # New conversations per second: well above what 2 cores turn around.
    sustained_rate: float
    # The live-process cap of the memory row's core.
    max_live: int


SIZES = {
    "full": LoadSizes(
        burst=32, conversations=200, sustained_seconds=60, sustained_rate=3, max_live=24
    ),
    "smoke": LoadSizes(burst=3, conversations=4, sustained_seconds=3, sustained_rate=2, max_live=2),
}


@dataclass(frozen=True)
class LoadRow:
    """One reported figure; `target_max` is reported, never enforced."""

    label: str
    value: float
    unit: str = "x"
    target_max: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target_max is None else self.value <= self.target_max


@dataclass
class LoadResult:
    rows: list[LoadRow] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def table(self) -> str:
        width = max(len(r.label) for r in self.rows)
        lines = ["load:"]
        for r in self.rows:
            line = f"  {r.label:<{width}}  {r.value:8.2f}{r.unit}"
            if r.met is not None:
                line += f"  (target <= {r.target_max}{r.unit}: {'met' if r.met else 'NOT met'})"
            lines.append(line)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [
                {
                    "label": r.label,
                    "value": r.value,
                    "unit": r.unit,
                    "target_max": r.target_max,
                    "target_met": r.met,
                }
                for r in self.rows
            ],
            "details": self.details,
            "warnings": self.warnings,
        }


def _at_once(count: int, work: Any) -> tuple[list[Any], float]:
    """Runs `work(i)` for i < count in threads released together; returns the
    results (or the exceptions) and the wall seconds until all finished."""
    barrier = threading.Barrier(count + 1)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as error:
            return error

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run, i) for i in range(count)]
        barrier.wait()
        started = time.perf_counter()
        results = [f.result() for f in futures]
        return results, time.perf_counter() - started


def _medians(turns: list[Any]) -> tuple[float, int]:
    ok = [t for t in turns if isinstance(t, Turn)]
    first = statistics.median(t.timing.first_text_s for t in ok) if ok else float("nan")
    return first, len(turns) - len(ok)


def burst(stack: BenchStack, size: int, result: LoadResult) -> None:
    stack.settle()
    facade = stack.facade()
    core = stack.core()
    stack_turns, stack_wall = _at_once(
        size,
        lambda i: http_turn(stack.http, facade.base_url, core.api_key, f"burst {i}: please answer"),
    )
    stack.settle()
    bare_turns, bare_wall = _at_once(
        size,
        lambda i: bare_cli_turn(
            stack.bare_env(), stack.new_bare_workspace(), f"bare burst {i}: please answer"
        ),
    )
    stack_first, stack_errors = _medians(stack_turns)
    bare_first, bare_errors = _medians(bare_turns)
    result.rows += [
        LoadRow(
            f"burst of {size}: stack / bare CLI, median first text",
            stack_first / bare_first,
            target_max=0.5,
        ),
        LoadRow(
            f"burst of {size}: stack / bare CLI, wall time for all",
            stack_wall / bare_wall,
            target_max=0.9,
        ),
        LoadRow(f"burst of {size}: stack errors", stack_errors, unit="", target_max=0),
    ]
    result.details["burst"] = {
        "size": size,
        "stack": {
            "median_first_text_s": stack_first,
            "wall_s": stack_wall,
            "errors": [repr(t)[:300] for t in stack_turns if not isinstance(t, Turn)],
        },
        "bare": {"median_first_text_s": bare_first, "wall_s": bare_wall, "errors": bare_errors},
    }


def memory(stack: BenchStack, sizes: LoadSizes, result: LoadResult) -> None:
    variant = f"capped-{sizes.max_live}"
    core = stack.core(variant, CCAPI_MAX_LIVE_PROCESSES=str(sizes.max_live))
    channel = stack.channel(variant)
    stack.settle()
    baseline = (
        tree_pss_bytes(core.process.pid) - claude_count(core.process.pid) * PROCESS_PSS_MIB * MIB
    )
    half, peak, most = 0, 0, 0
    for n in range(1, sizes.conversations + 1):
        grpc_turn(channel, core.metadata(), f"conversation {n}: please answer")
        pss = tree_pss_bytes(core.process.pid)
        peak, most = max(peak, pss), max(most, claude_count(core.process.pid))
        if n == sizes.conversations // 2:
            half = pss
    full = tree_pss_bytes(core.process.pid)
    budget = max(baseline, 0) + sizes.max_live * PROCESS_PSS_MIB * MIB
    n = sizes.conversations
    result.rows += [
        LoadRow(f"PSS after {n} / after {n // 2} conversations", full / half, target_max=1.1),
        LoadRow(
            f"peak PSS / budget of a {sizes.max_live}-process cap", peak / budget, target_max=1.0
        ),
    ]
    result.details["memory"] = {
        "conversations": n,
        "max_live_processes": sizes.max_live,
        "pss_half_mib": half / MIB,
        "pss_full_mib": full / MIB,
        "pss_peak_mib": peak / MIB,
        "budget_mib": budget / MIB,
        "most_claude_processes": most,
    }


def sustained(stack: BenchStack, sizes: LoadSizes, result: LoadResult) -> None:
    stack.settle()
    facade, core = stack.facade(), stack.core()
    statuses: list[int] = []
    unexpected: list[str] = []
    firsts: list[float] = []
    lock = threading.Lock()

    def arrive(i: int) -> None:
        body = {
            "model": "sonnet",
            "stream": True,
            "messages": [{"role": "user", "content": f"sustained {i}: please answer"}],
        }
        started = time.perf_counter()
        first = 0.0
        try:
            with stack.http.stream(
                "POST",
                f"{facade.base_url}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {core.api_key}"},
            ) as response:
                status = response.status_code
                if status != 200:
                    text = response.read().decode(errors="replace")
                    documented = (
                        status == 503
                        and "overloaded" in text
                        and response.headers.get("retry-after")
                    )
                    with lock:
                        statuses.append(status)
                        if status >= 500 and not documented:
                            unexpected.append(f"{status}: {text[:200]}")
                    return
                for line in response.iter_lines():
                    if line.startswith("data:") and not first and '"content"' in line:
                        chunk = json.loads(line[5:])
                        if (chunk.get("choices") or [{}])[0].get("delta", {}).get("content"):
                            first = time.perf_counter() - started
                    if '"error"' in line:
                        with lock:
                            unexpected.append(f"stream error: {line[:200]}")
        except httpx.HTTPError as error:
            with lock:
                unexpected.append(f"{type(error).__name__}: {error}")
            return
        with lock:
            statuses.append(200)
            if first:
                firsts.append(first)

    count = int(sizes.sustained_seconds * sizes.sustained_rate)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max(4, count)) as pool:
        for i in range(count):
            delay = started + i / sizes.sustained_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(arrive, i)
    seconds = time.monotonic() - started
    p95 = (
        statistics.quantiles(firsts, n=20)[-1]
        if len(firsts) >= 2
        else (firsts[0] if firsts else float("nan"))
    )
    admitted = statuses.count(200)
    result.rows += [
        LoadRow(
            f"sustained {sizes.sustained_rate:g}/s for {sizes.sustained_seconds:g} s: "
            "5xx other than documented 503s",
            len(unexpected),
            unit="",
            target_max=0,
        ),
        LoadRow("sustained: p95 first text of admitted turns", p95, unit=" s"),
        LoadRow("sustained: share admitted", admitted / max(1, count), unit=""),
    ]
    result.details["sustained"] = {
        "arrivals": count,
        "rate_per_s": sizes.sustained_rate,
        "seconds": seconds,
        "admitted": admitted,
        "refused_503": statuses.count(503),
        "unexpected": unexpected[:20],
        "first_text_s": firsts,
    }


def run_load(sizes: LoadSizes, log: TextIO = sys.stderr) -> LoadResult:
    """Every load row, on a stack of its own (the conversations it leaves
    behind must not weigh on the round-robin's timings)."""
    result = LoadResult()
    stack = BenchStack(log)
    ok = False
    try:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("burst", lambda: burst(stack, sizes.burst, result)),
            ("memory", lambda: memory(stack, sizes, result)),
            ("sustained", lambda: sustained(stack, sizes, result)),
        ]
        for name, step in steps:
            print(f"load: {name}...", file=log, flush=True)
            stack.context = f"load, {name}"
            try:
                step()
            except (BenchError, grpc.RpcError, httpx.HTTPError, OSError) as error:
                stack.warn(f"{name} failed: {type(error).__name__}: {str(error)[:300]}")
        ok = True
    finally:
        stack.close(keep_logs=not ok)
    result.warnings = stack.warnings
    return result
