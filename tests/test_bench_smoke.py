"""`make bench` machinery, one round and the load rows at their smallest:
every row and ratio comes out, with positive numbers. No timing is asserted:
benchmarks report, tests don't; errors are asserted (a burst and a sustained
overload end with no error but documented 503s)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.bench import COMPARISONS, SCENARIOS
from tests.bench.__main__ import main
from tests.bench.scenarios import FOLLOW_UP, METRICS, PHASES


def test_one_round_produces_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench.json"
    monkeypatch.setenv("BENCH_ROUNDS", "1")
    monkeypatch.setenv("BENCH_OUTPUT", str(output))
    monkeypatch.setenv("BENCH_WARMUP", "0")
    monkeypatch.setenv("BENCH_LOAD", "smoke")

    assert main() == 0

    result = json.loads(output.read_text())
    assert result["rounds"] == 1
    rows = {(r["scenario"], r["phase"]): r for r in result["rows"]}
    assert set(rows) == {(s.key, p) for s in SCENARIOS for p in PHASES}
    for row in rows.values():
        for metric in METRICS:
            samples = row["samples"][metric]
            assert len(samples) == 1, (row["scenario"], row["phase"], metric)
            assert samples[0] > 0
            assert row[f"{metric}_median"] == samples[0]
        assert row["first_text_s_median"] <= row["full_turn_s_median"]

    # The tool-results row (issue 12): the turn that waited for a client tool.
    assert ("client-tools", FOLLOW_UP) in rows
    assert [q["label"] for q in result["ratios"]] == [c.label for c in COMPARISONS]
    assert "tool results / plain follow-up (HTTP), first text" in [
        q["label"] for q in result["ratios"]
    ]
    for ratio in result["ratios"]:
        assert math.isfinite(ratio["value"]) and ratio["value"] > 0
        if ratio["target_max"] is not None:
            assert isinstance(ratio["target_met"], bool)

    # Tracing off against none, per RPC: both measured, the difference reported.
    tracing = result["tracing_off_s"]
    assert tracing["off"] > 0 and tracing["none"] > 0 and tracing["added"] >= 0

    load = result["load"]
    labels = [r["label"] for r in load["rows"]]
    assert len(labels) == 8, labels
    values = {r["label"]: r["value"] for r in load["rows"]}
    for label, value in values.items():
        assert math.isfinite(value) and value >= 0, (label, value)
    assert values["burst of 3: stack errors"] == 0, load["details"]["burst"]
    assert load["details"]["sustained"]["unexpected"] == []
    assert load["details"]["sustained"]["admitted"] >= 1
    assert load["details"]["memory"]["most_claude_processes"] <= 2  # the cap

    printed = capsys.readouterr().out
    assert "load:" in printed
    for scenario in SCENARIOS:
        assert scenario.title in printed
    for comparison in COMPARISONS:
        assert comparison.label in printed
