"""What tracing costs a request when it is off (the default), measured in
process where the machine's noise cannot hide it: the same unary gRPC call on
a real grpc.aio server over loopback, once as the core serves it with tracing
off (OpenTelemetry's server interceptor in front, an ALWAYS_OFF provider, the
spans a turn opens) and once with no tracing at all (no interceptor, the API's
no-op tracer), calls alternating. The difference, set against the turn times
`make bench` measured in the same run, says how much of a request tracing-off is.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

CALLS = 400
METHOD = "/bench.Tracing/Call"
# The spans one turn opens (turn.admission, turn.planning, claude.process,
# model.first_token, a tool, file-change scanning, a database write or two).
SPANS_PER_TURN = 8


def _handler(tracer: trace.Tracer) -> grpc.GenericRpcHandler:
    async def call(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        for i in range(SPANS_PER_TURN):
            with tracer.start_as_current_span(f"span-{i}"):
                pass
        return request

    method = grpc.unary_unary_rpc_method_handler(call)
    return grpc.method_handlers_generic_handler("bench.Tracing", {"Call": method})


async def _server(interceptors: list[Any], tracer: trace.Tracer) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((_handler(tracer),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _measure(calls: int) -> dict[str, float]:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    off, off_port = await _server(
        [aio_server_interceptor(tracer_provider=provider)],  # type: ignore[no-untyped-call]
        provider.get_tracer("bench"),
    )
    bare, bare_port = await _server([], trace.NoOpTracer())
    samples: dict[str, list[float]] = {"off": [], "none": []}
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{off_port}") as off_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{bare_port}") as bare_channel,
    ):
        stubs = {
            "off": off_channel.unary_unary(METHOD),
            "none": bare_channel.unary_unary(METHOD),
        }
        for stub in stubs.values():  # connect both before measuring
            await stub(b"warm-up")
        for _ in range(calls):
            for name, stub in stubs.items():
                started = time.perf_counter()
                await stub(b"x" * 64)
                samples[name].append(time.perf_counter() - started)
    await off.stop(None)
    await bare.stop(None)
    provider.shutdown()
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(calls: int = CALLS) -> dict[str, float]:
    """Median seconds per call: "off" (tracing off), "none" (no tracing), and
    "added" (their difference, never below zero)."""
    medians = asyncio.run(_measure(calls))
    medians["added"] = max(0.0, medians["off"] - medians["none"])
    return medians
