"""Runs the registry round-robin and reports medians and ratios."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc
import httpx

from tests.bench.measure import Timing
from tests.bench.scenarios import (
    COMPARISONS,
    METRICS,
    PHASES,
    SCENARIOS,
    Comparison,
    MetricName,
    Scenario,
)
from tests.bench.stack import ANSWER_CHUNKS, ANSWER_DELAY_S, BenchError, BenchStack

ATTEMPTS = 2


@dataclass
class Row:
    scenario: str
    title: str
    phase: str
    samples: dict[MetricName, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def add(self, timing: Timing) -> None:
        self.samples["first_text_s"].append(timing.first_text_s)
        self.samples["full_turn_s"].append(timing.full_turn_s)

    def median(self, metric: MetricName) -> float:
        values = self.samples[metric]
        return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class Ratio:
    comparison: Comparison
    value: float

    @property
    def met(self) -> bool | None:
        target = self.comparison.target_max
        return None if target is None else self.value <= target


@dataclass
class BenchResult:
    rounds: int
    rows: list[Row]
    ratios: list[Ratio]
    seconds: float
    warnings: list[str]

    def row(self, scenario: str, phase: str) -> Row:
        return next(r for r in self.rows if r.scenario == scenario and r.phase == phase)

    def to_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "seconds": round(self.seconds, 1),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "model_reply": {"text_deltas": ANSWER_CHUNKS, "delay_between_s": ANSWER_DELAY_S},
            "warnings": self.warnings,
            "rows": [
                {
                    "scenario": r.scenario,
                    "title": r.title,
                    "phase": r.phase,
                    **{f"{m}_median": r.median(m) for m in METRICS},
                    "samples": r.samples,
                }
                for r in self.rows
            ],
            "ratios": [
                {
                    "label": q.comparison.label,
                    "numerator": vars(q.comparison.numerator),
                    "denominator": vars(q.comparison.denominator),
                    "value": q.value,
                    "target_max": q.comparison.target_max,
                    "target_met": q.met,
                }
                for q in self.ratios
            ],
        }

    def table(self) -> str:
        title_width = max(len(r.title) for r in self.rows)
        lines = [
            f"{'scenario':<{title_width}}  {'turn':<9}  {'first text':>10}  {'full turn':>10}  n",
        ]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            lines.append(
                f"{r.title:<{title_width}}  {r.phase:<9}  "
                f"{_ms(r.median('first_text_s')):>10}  {_ms(r.median('full_turn_s')):>10}  "
                f"{len(r.samples['first_text_s'])}"
            )
        lines.append("")
        lines.append("ratios of medians:")
        label_width = max(len(q.comparison.label) for q in self.ratios)
        for q in self.ratios:
            line = f"  {q.comparison.label:<{label_width}}  {q.value:5.2f}x"
            if q.met is not None:
                verdict = "met" if q.met else "NOT met"
                line += f"  (target <= {q.comparison.target_max}x: {verdict})"
            lines.append(line)
        return "\n".join(lines)


def _attempt(stack: BenchStack, scenario: Scenario, label: str) -> dict[str, Timing]:
    """One round of a scenario; a failed turn is reported and the round run
    again, up to ATTEMPTS times. After that the round has no sample for it."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return scenario.run_round(stack, label)
        except (BenchError, grpc.RpcError, httpx.HTTPError, OSError) as error:
            then = "running it again" if attempt < ATTEMPTS else "no sample this round"
            stack.warn(f"turn failed: {_describe(error)}; {then}")
    return {}


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
        return f"gRPC {error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {str(error)[:300]}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def run_bench(
    rounds: int,
    scenarios: Sequence[Scenario] = SCENARIOS,
    comparisons: Sequence[Comparison] = COMPARISONS,
    *,
    warmup: bool = True,
    log: TextIO = sys.stderr,
) -> BenchResult:
    """Runs every scenario `rounds` times, interleaved: round r starts with
    scenario r mod n, so no scenario always follows the same one."""
    started = time.monotonic()
    rows = {(s.key, p): Row(s.key, s.title, p) for s in scenarios for p in PHASES}
    stack = BenchStack(log)
    ok = False
    try:
        for scenario in scenarios:
            scenario.prepare(stack)
        if warmup:  # page cache, imports, first connections: not measured
            print("warm-up round...", file=log, flush=True)
            for scenario in scenarios:
                stack.context = f"warm-up, {scenario.key}"
                _attempt(stack, scenario, "warm-up")
        n = len(scenarios)
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}...", file=log, flush=True)
            for i in range(n):
                scenario = scenarios[(r + i) % n]
                stack.context = f"round {r + 1}, {scenario.key}"
                for phase, timing in _attempt(stack, scenario, f"round {r + 1}").items():
                    rows[(scenario.key, phase)].add(timing)
        ok = True
    finally:
        stack.close(keep_logs=not ok)
    ratios = []
    for c in comparisons:
        num = rows[(c.numerator.scenario, c.numerator.phase)].median(c.numerator.metric)
        den = rows[(c.denominator.scenario, c.denominator.phase)].median(c.denominator.metric)
        ratios.append(Ratio(c, num / den))
    return BenchResult(
        rounds, list(rows.values()), ratios, time.monotonic() - started, stack.warnings
    )
