"""Metrics and traces, set up the same way in the core, the HTTP facade and
the admin site.

- `MetricsExposure`: who may read `/metrics` (CCAPI_METRICS=on|off|token,
  CCAPI_METRICS_TOKEN); `check` answers 200, 401 or 404 for a request.
- `BoundedLabel`: a label value kept to the first N distinct values seen
  (the rest are "other"), so key ids cannot blow up a metric's series.
- `setup_tracing`: an OpenTelemetry SDK tracer provider from the standard
  OTEL_* variables. It exports only when they say so (an OTLP endpoint, or
  OTEL_TRACES_EXPORTER); otherwise spans are not recorded at all, but trace
  ids are still made and passed on, so every log line and request-log row
  can carry one. OTEL_SDK_DISABLED=true leaves even that out (the bench's
  baseline). Propagation is W3C `traceparent` (OTel's default).
- `current_trace_id` / `inject`: the trace id of the running span, and the
  current context as gRPC metadata.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from ccapi_client.env import env_int, env_str

# --------------------------------------------------------------------------
# /metrics exposure
# --------------------------------------------------------------------------

ExposureMode = Literal["on", "off", "token"]
METRICS_PATH = "/metrics"
DEFAULT_METRICS_PORT = 9464


@dataclass(frozen=True)
class MetricsExposure:
    """Whether `/metrics` answers, and to whom.

    `on` (default): anyone who reaches the port; `off`: 404; `token`: only a
    request with `Authorization: Bearer <CCAPI_METRICS_TOKEN>` (else 401).
    Setting CCAPI_METRICS_TOKEN alone implies `token`.
    """

    mode: ExposureMode = "on"
    token: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsExposure:
        e = os.environ if env is None else env
        token = e.get("CCAPI_METRICS_TOKEN", "").strip()
        raw = env_str(e, "CCAPI_METRICS", "token" if token else "on").lower()
        if raw in ("1", "true", "yes"):
            raw = "on"
        if raw in ("0", "false", "no"):
            raw = "off"
        if raw not in ("on", "off", "token"):
            raise ValueError(f"CCAPI_METRICS must be on, off or token, got {raw!r}")
        if raw == "token" and not token:
            raise ValueError("CCAPI_METRICS=token needs CCAPI_METRICS_TOKEN")
        mode: ExposureMode = "on" if raw == "on" else "off" if raw == "off" else "token"
        return cls(mode, token)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def check(self, authorization: str | None) -> int:
        """The HTTP status a scrape with this Authorization header gets."""
        if self.mode == "off":
            return 404
        if self.mode == "token":
            scheme, _, given = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return 401
        return 200


def metrics_port(env: Mapping[str, str] | None = None) -> int:
    """CCAPI_METRICS_PORT: the core's Prometheus listener (0: any free port)."""
    return env_int(os.environ if env is None else env, "CCAPI_METRICS_PORT", DEFAULT_METRICS_PORT)


# --------------------------------------------------------------------------
# Bounded label values
# --------------------------------------------------------------------------

OTHER = "other"
DEFAULT_TOP_KEYS = 100


class BoundedLabel:
    """The first `limit` distinct values pass as they are; later ones are
    `other`. Prometheus keeps every series it ever saw, so a label fed by
    callers (key ids) needs a cap; first-seen is stable across scrapes,
    which a "current top N" would not be."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER

    def __len__(self) -> int:
        return len(self._seen)


def top_keys(env: Mapping[str, str] | None = None) -> int:
    """CCAPI_METRICS_TOP_KEYS: how many key ids get their own series."""
    return max(0, env_int(os.environ if env is None else env, "CCAPI_METRICS_TOP_KEYS",
                          DEFAULT_TOP_KEYS))


# --------------------------------------------------------------------------
# Traces
# --------------------------------------------------------------------------

# Test-only exporter: each finished span as one JSON line appended to
# CCAPI_TRACE_FILE, so a test can read the spans of several processes.
FILE_EXPORTER = "ccapi_file"


class JsonLinesFileExporter(SpanExporter):
    """Appends spans to a file, one JSON object a line (O_APPEND: gunicorn's
    workers can share the file)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(json.loads(s.to_json(indent=None))) + "\n" for s in spans)
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def sdk_disabled(env: Mapping[str, str] | None = None) -> bool:
    """OTEL_SDK_DISABLED=true: no SDK at all (no trace ids, no trace interceptor)."""
    e = os.environ if env is None else env
    return e.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporter_name(env: Mapping[str, str]) -> str:
    """Which exporter the OTEL_* variables ask for ("none": not exporting)."""
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names:
        return names[0]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return "otlp" if endpoint else "none"


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol.strip() == "grpc":
            raise ValueError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not installed; use http/protobuf"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == FILE_EXPORTER:
        return JsonLinesFileExporter(env["CCAPI_TRACE_FILE"])
    raise ValueError(f"OTEL_TRACES_EXPORTER {name!r} is not supported (otlp, console or none)")


_provider_lock = threading.Lock()
_installed: TracerProvider | None = None
# The process that installed it: a forked gunicorn worker installs its own.
_installed_pid = 0


def setup_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Installs this process's tracer provider (once); True when spans are exported.

    Not exporting, the sampler is ALWAYS_OFF: spans are neither recorded
    nor sent, yet carry trace ids (a client's, or new ones) to logs and the
    core. Exporting, OTEL_TRACES_SAMPLER applies (default: parent-based,
    always on). `service` names the part; OTEL_RESOURCE_ATTRIBUTES adds to it.
    """
    global _installed, _installed_pid
    e = os.environ if env is None else env
    if sdk_disabled(e):
        return False  # the API's no-op tracer stays
    name = _exporter_name(e)
    with _provider_lock:
        if _installed is not None and _installed_pid == os.getpid():
            return bool(_installed.sampler is not ALWAYS_OFF)
        resource = Resource.create({"service.name": service})
        if name == "none":
            provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
        else:
            provider = TracerProvider(resource=resource)
            exporter = _span_exporter(name, e)
            # The test exporter writes at once: a test reads the file right after a request.
            processor = (
                SimpleSpanProcessor(exporter) if name == FILE_EXPORTER
                else BatchSpanProcessor(exporter)
            )
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _installed, _installed_pid = provider, os.getpid()
        return name != "none"


def shutdown_tracing() -> None:
    """Flushes spans still queued (on a clean exit)."""
    if _installed is not None:
        _installed.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_trace_id() -> str:
    """The running span's trace id as 32 hex digits ("" when there is none)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def current_span_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else ""


def inject(metadata: MutableSequence[tuple[str, str]]) -> None:
    """Adds the current trace context (traceparent, tracestate) to gRPC metadata."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata.extend(carrier.items())


def asgi_traced(app: Any) -> Any:
    """`app` inside OpenTelemetry's ASGI middleware: a server span per request,
    its parent from the client's traceparent (a new trace without one).
    Per-message send/receive spans are left out (an SSE stream has thousands)."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"])
