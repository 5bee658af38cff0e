"""Prometheus metrics of a Falcon ASGI site under gunicorn (the HTTP facade and
the admin site): a middleware counting requests by route template (never the
raw path), a `/metrics` resource honouring the exposure setting, and
prometheus_client's multiprocess mode so that every worker's numbers add up.

Multiprocess mode: `multiprocess_dir()` is made by the gunicorn arbiter
before any worker starts and sets PROMETHEUS_MULTIPROC_DIR (prometheus_client
reads it when first imported, so this module imports it lazily);
`mark_dead` is gunicorn's `child_exit` hook. Without the variable (an app
built in a test) the metrics live on the app's own registry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import falcon
import falcon.asgi

from ccapi_client.telemetry import METRICS_PATH, MetricsExposure

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900,
                   float("inf"))
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, float("inf"))
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@contextlib.contextmanager
def multiprocess_dir(prefix: str) -> Iterator[str]:
    """A fresh directory for this run's worker files, removed at the end."""
    path = tempfile.mkdtemp(prefix=prefix)
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def mark_dead(_server: Any, worker: Any) -> None:
    """gunicorn's child_exit: a dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def outcome_of(status: int) -> str:
    if status == 499:
        return "cancelled"
    return "ok" if status < 400 else "error"


class RequestTiming:
    """When a request started and when its first answer token passed by."""

    __slots__ = ("first_token_at", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_token_at: float | None = None

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()


class SiteMetrics:
    """The request metrics of one site (`prefix`: ccapi_http or ccapi_admin)."""

    def __init__(self, prefix: str, with_model: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values go to the workers' files and are read
        # back by MultiProcessCollector; registering them would count twice.
        self._own: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        self.with_model = with_model
        labels = ["endpoint", "method", *(["model"] if with_model else []), "status", "outcome"]
        self.requests = Counter(
            f"{prefix}_requests", "HTTP requests by route template, method, "
            + ("model, " if with_model else "") + "status and outcome.",
            labels, registry=self._own,
        )
        self.latency = Histogram(
            f"{prefix}_request_duration_seconds",
            "Time from the request to the last byte of its response.",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=self._own,
        )
        self.ttft = (
            Histogram(
                f"{prefix}_time_to_first_token_seconds",
                "Time from the request to the first answer text passed on.",
                ["endpoint", "model"], buckets=TTFT_BUCKETS, registry=self._own,
            )
            if with_model else None
        )

    def observe(
        self, req: falcon.asgi.Request, status: int, outcome: str, timing: RequestTiming
    ) -> None:
        # Clients choose the method: only the usual ones get their own value.
        method = req.method if req.method in METHODS else "other"
        model = str(getattr(req.context, "model", "") or "none")
        self.count(req.uri_template or UNMATCHED, method, model, status, outcome, timing)

    def count(
        self,
        endpoint: str,
        method: str,
        model: str,
        status: int,
        outcome: str,
        timing: RequestTiming,
    ) -> None:
        """One request by its labels (a WebSocket message has no request of its own)."""
        now = time.monotonic()
        values = [endpoint, method, *([model] if self.with_model else []), str(status), outcome]
        self.requests.labels(*values).inc()
        self.latency.labels(endpoint, method).observe(now - timing.started)
        if self.ttft is not None and timing.first_token_at is not None:
            self.ttft.labels(endpoint, model).observe(timing.first_token_at - timing.started)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._own is not None:
            return generate_latest(self._own), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every request once its response is complete (streams: at their end)."""

    def __init__(self, metrics: SiteMetrics) -> None:
        self.metrics = metrics

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.timing = RequestTiming()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        if req.path == METRICS_PATH:
            return
        timing: RequestTiming = getattr(req.context, "timing", None) or RequestTiming()
        status = resp.status_code
        if resp.sse is not None:
            resp.sse = self._counted(resp.sse, req, status, timing)
            return
        self.metrics.observe(req, status, outcome_of(status), timing)

    async def _counted(
        self,
        events: AsyncIterator[falcon.asgi.SSEvent | None],
        req: falcon.asgi.Request,
        status: int,
        timing: RequestTiming,
    ) -> AsyncIterator[falcon.asgi.SSEvent | None]:
        outcome = "cancelled"
        try:
            async for event in events:
                yield event
            outcome = outcome_of(status)
        except Exception:
            outcome = "error"
            raise
        finally:
            self.metrics.observe(req, status, outcome, timing)


class MetricsResource:
    """`GET /metrics`: 404 when off, 401 without the token when one is required."""

    def __init__(self, metrics: SiteMetrics, exposure: MetricsExposure) -> None:
        self.metrics = metrics
        self.exposure = exposure

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        status = self.exposure.check(req.get_header("Authorization"))
        if status == 404:
            raise falcon.HTTPNotFound()
        if status == 401:
            raise falcon.HTTPUnauthorized(
                title="Metrics need a token",
                description="Send Authorization: Bearer <CCAPI_METRICS_TOKEN>.",
                challenges=['Bearer realm="metrics"'],
            )
        body, content_type = self.metrics.exposition()
        resp.data = body
        resp.content_type = content_type
