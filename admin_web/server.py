"""Runs the admin site under gunicorn with uvicorn ASGI workers (blocking)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from admin_web.config import AdminConfig
from ccapi_client import gunicorn_app, web_metrics

log = logging.getLogger("ccapi.admin")

# /events streams stay open; the worker heartbeat is separate from requests.
GUNICORN_OPTIONS: dict[str, Any] = {
    "graceful_timeout": 5, "timeout": 60, "keepalive": 30, "proc_name": "ccapi-admin",
}


def _create_app(config: AdminConfig) -> Any:
    from admin_web.app import create_app
    from ccapi_client import json_logs, telemetry

    json_logs.configure("info")
    json_logs.format_server_logs()
    telemetry.setup_tracing("ccapi-admin")
    return telemetry.asgi_traced(create_app(config))


def serve(config: AdminConfig | None = None) -> None:
    """Serves until SIGTERM/SIGINT; the calling process becomes gunicorn's arbiter."""
    config = config or AdminConfig.from_env()
    if not config.admin_token:
        log.warning("CCAPI_ADMIN_TOKEN is not set: the core will refuse the admin site's calls")
    log.info("admin site on http://%s:%s, core at %s", config.host, config.port,
             config.core_addr)
    load = functools.partial(_create_app, config)
    options = {**GUNICORN_OPTIONS, "child_exit": web_metrics.mark_dead}
    # As the facade's: the workers' metrics files, added up by /metrics.
    with web_metrics.multiprocess_dir("ccapi-admin-metrics-"):
        gunicorn_app.serve(load, config.host, config.port, config.workers, options)


if __name__ == "__main__":
    serve()
