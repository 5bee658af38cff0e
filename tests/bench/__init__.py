"""`make bench`: latency of the service next to a bare `claude -p` per turn.

Every scenario runs against the same model double (a text answer streamed in
several deltas with a fixed delay), round-robin, so machine noise hits all of
them alike. Rows come from a small registry (:mod:`tests.bench.scenarios`):
add a :class:`~tests.bench.scenarios.Scenario` and, when it should be compared
with another row, a :class:`~tests.bench.scenarios.Comparison`.

    python -m tests.bench            # BENCH_ROUNDS=10, writes bench-results.json
"""

from tests.bench.runner import BenchResult, run_bench
from tests.bench.scenarios import COMPARISONS, SCENARIOS, Comparison, Scenario

__all__ = ["COMPARISONS", "SCENARIOS", "BenchResult", "Comparison", "Scenario", "run_bench"]
