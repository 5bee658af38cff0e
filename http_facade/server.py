"""Runs the facade under gunicorn with uvicorn ASGI workers (blocking)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ccapi_client import gunicorn_app, web_metrics
from http_facade.config import FacadeConfig

log = logging.getLogger(__name__)

GUNICORN_OPTIONS: dict[str, Any] = {"timeout": 60, "keepalive": 75, "proc_name": "ccapi-http"}


def _create_app(config: FacadeConfig) -> Any:
    # Runs in each worker after fork; the core channel opens on first use.
    from ccapi_client import json_logs, telemetry
    from http_facade.app import create_app

    json_logs.configure("info")
    json_logs.format_server_logs()
    telemetry.setup_tracing("ccapi-http")
    return telemetry.asgi_traced(create_app(config))


def serve(config: FacadeConfig | None = None) -> None:
    """Serves until SIGTERM/SIGINT; the calling process becomes gunicorn's arbiter."""
    config = config or FacadeConfig.from_env()
    log.info(
        "HTTP facade on %s:%s, core at %s, %d workers",
        config.host,
        config.port,
        config.core_addr,
        config.workers,
    )
    if not config.credential:
        log.warning(
            "CCAPI_ADMIN_TOKEN is not set: the core will not take the facade's word for "
            "endpoints and client addresses, nor record the requests it refuses"
        )
    options = {
        **GUNICORN_OPTIONS,
        "graceful_timeout": config.graceful_timeout_seconds,
        "child_exit": web_metrics.mark_dead,
    }
    load = functools.partial(_create_app, config)
    # Set before the workers fork (and import prometheus_client): their
    # metrics files go there, and /metrics adds them up.
    with web_metrics.multiprocess_dir("ccapi-http-metrics-"):
        gunicorn_app.serve(load, config.host, config.port, config.workers, options)


if __name__ == "__main__":
    serve()
