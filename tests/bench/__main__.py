"""`python -m tests.bench` (`make bench`): prints the table, writes bench-results.json.

BENCH_ROUNDS (default 10) sets the measured rounds, BENCH_OUTPUT the JSON path;
BENCH_WARMUP=0 skips the unmeasured warm-up round (the smoke test does).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.bench.runner import run_bench
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
    output.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
