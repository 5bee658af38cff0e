"""The core's Prometheus metrics, and the small HTTP listener that serves them
on CCAPI_METRICS_PORT.

Per-request counters and histograms are fed from the request-log row
(`observe_entry`: the one place every API request passes, so the scraped
totals match the request log); a refused or failed call adds its kind
(`observe_failure`, from the call's reason); gauges are read from the live
objects at scrape time (`CoreGauges`). Key ids are bounded labels
(CCAPI_METRICS_TOP_KEYS first-seen ids, the rest "other").
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import HTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccapi_client.env import env_str
from ccapi_client.telemetry import (
    DEFAULT_METRICS_PORT,
    DEFAULT_TOP_KEYS,
    BoundedLabel,
    MetricsExposure,
    metrics_port,
    top_keys,
)
from core_service.rate_buckets import WRONG_KEY_THROTTLED
from core_service.request_log import LogEntry

log = logging.getLogger("ccapi.metrics")

# Seconds; turns run from well under a second to many minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, float("inf"))
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, float("inf"))
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, float("inf"))
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))

# Reasons of refused calls -> limit kinds (ccapi_limit_rejections_total).
LIMIT_KINDS = {
    "insufficient_quota": "budget",
    "session_busy": "session_busy",
    WRONG_KEY_THROTTLED: "wrong_key",
}
# Phrases of the key limits' messages (all share the reason rate_limit_exceeded).
RATE_KINDS = (
    ("tokens per minute", "tokens_per_minute"),
    ("requests per minute", "requests_per_minute"),
    ("turns at once", "concurrency"),
)
# Reasons of the model's failures -> ccapi_model_errors_total{type}.
MODEL_ERROR_TYPES = {
    "model_rate_limited": "429",
    "model_overloaded": "529",
    "model_unavailable": "5xx",
    "model_timeout": "timeout",
    "model_error": "other",
    "model_invalid_request": "400",
    "upstream_authentication": "401",
}


def limit_kind(reason: str, message: str) -> str | None:
    """The limit a refusal names, or None when it was no limit."""
    if reason in LIMIT_KINDS:
        return LIMIT_KINDS[reason]
    if reason == "rate_limit_exceeded":
        for phrase, kind in RATE_KINDS:
            if phrase in message:
                return kind
        return "other"
    if "queue" in reason or "capacity" in reason or reason == "overloaded":
        return "capacity"
    return None


def model_error_type(reason: str) -> str | None:
    if reason in MODEL_ERROR_TYPES:
        return MODEL_ERROR_TYPES[reason]
    return "timeout" if "timeout" in reason and reason.startswith("model") else None


class CoreMetrics:
    """Every metric of one core, on its own registry (tests make several)."""

    def __init__(self, top_keys: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.key_label = BoundedLabel(top_keys)
        self.requests = Counter(
            "ccapi_requests", "API requests by endpoint, model, HTTP status and outcome.",
            ["endpoint", "model", "status", "outcome"], registry=r,
        )
        self.latency = Histogram(
            "ccapi_request_duration_seconds", "Wall time of an API request.",
            ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "ccapi_time_to_first_token_seconds",
            "Time from the request to the first answer text (requests with text only).",
            ["endpoint", "model"], buckets=TTFT_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "ccapi_tokens", "Tokens by model, key id and kind "
            "(input, output, cache_read, cache_write).",
            ["model", "key_id", "kind"], registry=r,
        )
        self.cost = Counter(
            "ccapi_cost_usd", "Model cost in US dollars by model and key id.",
            ["model", "key_id"], registry=r,
        )
        self.limit_rejections = Counter(
            "ccapi_limit_rejections", "Requests refused by a limit, by kind.",
            ["kind"], registry=r,
        )
        self.model_errors = Counter(
            "ccapi_model_errors", "Turns the model failed, by type (429, 529, 5xx, timeout, ...).",
            ["type"], registry=r,
        )
        self.process_acquisitions = Counter(
            "ccapi_claude_process_acquisitions",
            "Where a turn's Claude Code process came from: pool (a pool hit), live "
            "(the session's running process) or started (a cold start).",
            ["source"], registry=r,
        )
        self.queue_wait = Histogram(
            "ccapi_queue_wait_seconds", "Time a turn waited for capacity before it ran.",
            buckets=QUEUE_BUCKETS, registry=r,
        )
        self.db_latency = Histogram(
            "ccapi_db_query_duration_seconds", "Database statement time by operation.",
            ["operation"], buckets=DB_BUCKETS, registry=r,
        )

    # -- fed by the request path ------------------------------------------

    def observe_entry(self, entry: LogEntry) -> None:
        """One request-log row; never raises (it runs on the request path)."""
        try:
            self._observe(entry)
        except Exception:  # pragma: no cover - defensive
            log.exception("could not count a request")

    def _observe(self, e: LogEntry) -> None:
        model = e.model or "none"
        self.requests.labels(e.endpoint, model, str(e.status), e.outcome).inc()
        self.latency.labels(e.endpoint, model).observe(e.latency_ms / 1000)
        if e.ttft_ms > 0:
            self.ttft.labels(e.endpoint, model).observe(e.ttft_ms / 1000)
        key = self.key_label(e.key_id or "none")
        for kind, count in (
            ("input", e.input_tokens),
            ("output", e.output_tokens),
            ("cache_read", e.cache_read_tokens),
            ("cache_write", e.cache_write_tokens),
        ):
            if count:
                self.tokens.labels(model, key, kind).inc(count)
        if e.cost_usd:
            self.cost.labels(model, key).inc(e.cost_usd)
        if e.turn_id:
            self.queue_wait.observe(e.queue_ms / 1000)

    def observe_failure(self, reason: str, message: str) -> None:
        """A call that ended with a domain error: limits and model errors by kind."""
        kind = limit_kind(reason, message)
        if kind is not None:
            self.limit_rejections.labels(kind).inc()
        error_type = model_error_type(reason)
        if error_type is not None:
            self.model_errors.labels(error_type).inc()

    def observe_process(self, source: str) -> None:
        self.process_acquisitions.labels(source).inc()

    def observe_db(self, statement: str, seconds: float) -> None:
        self.db_latency.labels(operation(statement)).observe(seconds)

    def watch(self, gauges: CoreGauges) -> None:
        self.registry.register(gauges)


_OPERATIONS = ("select", "insert", "update", "delete")


def operation(statement: str) -> str:
    """A statement's verb, one of a few (a bounded label)."""
    verb = statement.lstrip()[:6].lower()
    return verb if verb in _OPERATIONS else "other"


class CoreGauges(Collector):
    """Gauges read from the live objects at scrape time. Values the objects do
    not offer (yet) are left out rather than guessed."""

    def __init__(self, registry: Any, pool: Any) -> None:
        self._registry = registry
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        r, p = self._registry, self._pool
        yield _gauge("ccapi_claude_processes_live",
                     "Live Claude Code processes, the pool's included.", float(r.live_count))
        yield _gauge("ccapi_turns_running", "Turns running now.", float(r.running_count))
        yield _gauge("ccapi_queue_depth", "Turns waiting for capacity.", float(r.queue_depth))
        yield _gauge("ccapi_pool_ready_processes", "Pre-started Claude Code processes ready.",
                     float(p.ready_count))
        yield _gauge("ccapi_pool_size", "The pool's configured size.", float(p.size))
        waiting = _client_tool_calls(r)
        if waiting is not None:
            yield _gauge("ccapi_client_tool_calls_waiting",
                         "Client-tool calls Claude Code is waiting on.", waiting)

    def describe(self) -> Iterable[Metric]:
        return []


def _client_tool_calls(registry: Any) -> float | None:
    """Calls waiting on every live process's client-tool server, where processes have one."""
    processes = getattr(registry, "_live", None)
    if not isinstance(processes, dict):
        return None
    total, found = 0, False
    for process in list(processes.values()):
        tools = getattr(process, "client_tools", None)
        pending = getattr(tools, "pending", None)
        if callable(pending):
            found = True
            total += len(pending())
    return float(total) if found else None


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value or 0.0)


# --------------------------------------------------------------------------
# The listener
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerSettings:
    """Where the core serves /metrics: CCAPI_HOST, CCAPI_METRICS_PORT, and who may read it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_METRICS_PORT
    exposure: MetricsExposure = field(default_factory=MetricsExposure)
    top_keys: int = DEFAULT_TOP_KEYS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ListenerSettings:
        e = os.environ if env is None else env
        return cls(
            host=env_str(e, "CCAPI_HOST", "127.0.0.1"),
            port=metrics_port(e),
            exposure=MetricsExposure.from_env(e),
            top_keys=top_keys(e),
        )


def start_listener(
    registry: CollectorRegistry, settings: ListenerSettings
) -> HTTPServer | None:
    """Serves `/metrics` on host:port in a daemon thread (None when off).

    prometheus_client's WSGI app behind a check of the exposure setting; a
    port that cannot be bound is logged, not fatal: the API matters more.
    """
    host, port, exposure = settings.host, settings.port, settings.exposure
    if not exposure.enabled:
        return None
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        status = exposure.check(environ.get("HTTP_AUTHORIZATION"))
        if status != 200:
            text = "404 Not Found" if status == 404 else "401 Unauthorized"
            headers = [("Content-Type", "text/plain")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(text, headers)
            return [text.encode() + b"\n"]
        return metrics_app(environ, start_response)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = make_server(host, port, app, server_class=Server, handler_class=QuietHandler)
    except OSError as error:
        log.error("could not serve metrics on %s:%s: %s", host, port, error)
        return None
    thread = threading.Thread(target=server.serve_forever, name="ccapi-metrics", daemon=True)
    thread.start()
    log.info("metrics on http://%s:%s/metrics", host, server.server_port)
    return server


async def stop_listener(server: HTTPServer | None) -> None:
    """Stops serving and frees the port. Off the event loop: `shutdown` waits
    for the serving thread to notice (up to its poll interval)."""
    if server is None:
        return
    await asyncio.to_thread(server.shutdown)
    server.server_close()
