"""Runs the facade under gunicorn with uvicorn ASGI workers (blocking)."""

from __future__ import annotations

import functools
import logging
from typing import Any

from ccapi_client import gunicorn_app
from http_facade.config import FacadeConfig

log = logging.getLogger(__name__)

GUNICORN_OPTIONS: dict[str, Any] = {"timeout": 60, "keepalive": 75, "proc_name": "ccapi-http"}


def _create_app(config: FacadeConfig) -> Any:
    # Runs in each worker after fork; the core channel opens on first use.
    from http_facade.app import create_app

    return create_app(config)


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
    options = {**GUNICORN_OPTIONS, "graceful_timeout": config.graceful_timeout_seconds}
    load = functools.partial(_create_app, config)
    gunicorn_app.serve(load, config.host, config.port, config.workers, options)


if __name__ == "__main__":
    serve()
