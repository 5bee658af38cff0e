"""The facade's own overhead: time to first text through HTTP vs through gRPC directly.

For `make bench` (tests/bench is the lead's): call :func:`first_text_row` with a
running core and model double, or run `python -m tests.facade.bench_overhead`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from claudecode.v1 import agent_pb2, agent_pb2_grpc, content_pb2
from tests.facade.gunicorn_proc import start_facade
from tests.model_double import ModelDouble, Reply
from tests.stack import CoreProcess, start_core


def _grpc_first_text(core: CoreProcess, text: str) -> float:
    req = agent_pb2.RunTurnRequest(model="sonnet", messages=[content_pb2.Message(
        role=content_pb2.ROLE_USER, content=[content_pb2.ContentPart(text=text)])])
    with core.channel() as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        t0 = time.perf_counter()
        first = 0.0
        for ev in stub.RunTurn(req, metadata=core.metadata(), timeout=120):
            if not first and ev.WhichOneof("event") == "text_delta":
                first = time.perf_counter() - t0
        return first


def _http_first_text(base_url: str, key: str, text: str) -> float:
    body = {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": text}]}
    t0 = time.perf_counter()
    first = 0.0
    with httpx.stream("POST", base_url + "/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        for line in r.iter_lines():
            if not first and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - t0
    return first


def first_text_row(
    core: CoreProcess, model_double: ModelDouble, runs: int = 5, pause: float = 1.5
) -> dict[str, float]:
    """Median seconds to the first text delta via gRPC and via HTTP, and their ratio."""
    model_double.set_default(Reply.text("benchmark answer text", chunks=3))
    with tempfile.TemporaryDirectory() as tmp:
        facade = start_facade(core.addr, Path(tmp) / "gunicorn.log", workers=2)
        try:
            _http_first_text(facade.base_url, core.api_key, "warm up")
            _grpc_first_text(core, "warm up")
            grpc_times: list[float] = []
            http_times: list[float] = []
            for i in range(runs):  # interleaved, with pauses so the core's process pool
                time.sleep(pause)  # is in the same state for both sides
                grpc_times.append(_grpc_first_text(core, f"g{i}"))
                time.sleep(pause)
                http_times.append(_http_first_text(facade.base_url, core.api_key, f"h{i}"))
        finally:
            facade.stop()
    g, h = statistics.median(grpc_times), statistics.median(http_times)
    return {"grpc_first_text_s": g, "http_first_text_s": h, "http_over_grpc": h / g}


if __name__ == "__main__":
    with ModelDouble() as double:
        running = start_core(double.url)
        try:
            row = first_text_row(running, double)
        finally:
            running.cleanup()
    print(f"first text: gRPC {row['grpc_first_text_s'] * 1000:.0f} ms, "
          f"HTTP {row['http_first_text_s'] * 1000:.0f} ms, "
          f"ratio {row['http_over_grpc']:.2f}")
