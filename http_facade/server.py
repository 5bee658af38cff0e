"""Runs the facade under gunicorn with uvicorn ASGI workers (blocking)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from gunicorn.app.base import BaseApplication

from http_facade.config import FacadeConfig

with warnings.catch_warnings():
    # uvicorn points at the separate uvicorn-worker package; the bundled class works
    # with gunicorn 27 and saves a dependency.
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker as _UvicornWorker

log = logging.getLogger(__name__)


class FacadeWorker(_UvicornWorker):  # type: ignore[misc,unused-ignore]
    """uvicorn worker on the plain asyncio loop (grpc.aio does not support uvloop)."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "auto", "lifespan": "off"}


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: FacadeConfig) -> None:
        self.facade_config = config
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": [_bind(self.facade_config.host, self.facade_config.port)],
            "workers": self.facade_config.workers,
            "worker_class": "http_facade.server.FacadeWorker",
            "graceful_timeout": self.facade_config.graceful_timeout_seconds,
            "timeout": 60,
            "keepalive": 75,
            "proc_name": "ccapi-http",
            "accesslog": "-",
            "errorlog": "-",
            "preload_app": False,
            # Several gunicorns (tests, scaled facades) share one $HOME; no control socket.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after fork; the core channel opens on first use.
        from http_facade.app import create_app

        return create_app(self.facade_config)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    _Gunicorn(config).run()


if __name__ == "__main__":
    serve()
