"""`python -m tests.bench` (`make bench`): prints the table, writes bench-results.json.

BENCH_ROUNDS (default 10) sets the measured rounds, BENCH_OUTPUT the JSON path;
BENCH_WARMUP=0 skips the unmeasured warm-up round (the smoke test does);
BENCH_LOAD picks the size of the load rows (`full`, `smoke`, or `0`: none).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.bench.accounting import measure as measure_accounting
from tests.bench.load import SIZES, run_load
from tests.bench.runner import run_bench
from tests.bench.tracing_cost import measure as measure_tracing
from tests.stack import REPO

DEFAULT_ROUNDS = 10


def main() -> int:
    rounds = int(os.environ.get("BENCH_ROUNDS", "") or DEFAULT_ROUNDS)
    output = Path(os.environ.get("BENCH_OUTPUT", "") or REPO / "bench-results.json")
    warmup = os.environ.get("BENCH_WARMUP", "1") != "0"
    result = run_bench(rounds, warmup=warmup)
    print()
    print(result.table())
    print()
    print(f"{result.rounds} rounds in {result.seconds:.0f} s; medians; raw samples in {output}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    data = result.to_json()
    # The auth + limits + log work a keyed request costs, against a whole turn.
    accounting = measure_accounting()
    follow_up = result.row("core-grpc", "follow-up").median("full_turn_s")
    new = result.row("core-grpc", "new").median("full_turn_s")
    print()
    print("per-request auth + limits + request log (median, real database):")
    for engine, seconds in accounting.items():
        print(
            f"  {engine:<10} {seconds * 1000:6.2f} ms"
            f" = {seconds / follow_up:5.3f}x a follow-up turn,"
            f" {seconds / new:5.3f}x a new conversation's turn"
        )
    data["accounting_s"] = accounting
    # Tracing off (the default) against none at all, per RPC, in process.
    tracing = measure_tracing()
    print()
    print(
        f"tracing off, per RPC (median, in process): {tracing['off'] * 1e6:.0f} us vs "
        f"{tracing['none'] * 1e6:.0f} us with no tracing: +{tracing['added'] * 1e6:.0f} us"
        f" = {tracing['added'] / follow_up:.4f}x a follow-up turn"
    )
    data["tracing_off_s"] = tracing
    load_size = os.environ.get("BENCH_LOAD", "full")
    if load_size != "0":
        load = run_load(SIZES[load_size])
        print()
        print(load.table())
        for warning in load.warnings:
            print(f"warning: {warning}")
        data["load"] = load.to_json()
    output.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
