"""Runs the admin site under gunicorn with uvicorn ASGI workers (blocking)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from gunicorn.app.base import BaseApplication

from admin_web.config import AdminConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker as _UvicornWorker

log = logging.getLogger("ccapi.admin")


class AdminWorker(_UvicornWorker):  # type: ignore[misc]
    """uvicorn worker on the plain asyncio loop (grpc.aio does not support uvloop)."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "auto", "lifespan": "off"}


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: AdminConfig) -> None:
        self.admin_config = config
        super().__init__()

    def load_config(self) -> None:
        host = self.admin_config.host
        bind = f"[{host}]:{self.admin_config.port}" if ":" in host else \
            f"{host}:{self.admin_config.port}"
        options: dict[str, Any] = {
            "bind": [bind],
            "workers": self.admin_config.workers,
            "worker_class": "admin_web.server.AdminWorker",
            "graceful_timeout": 5,
            # /events streams stay open; the worker heartbeat is separate from requests.
            "timeout": 60,
            "keepalive": 30,
            "proc_name": "ccapi-admin",
            "accesslog": "-",
            "errorlog": "-",
            "preload_app": False,
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from admin_web.app import create_app

        return create_app(self.admin_config)


def serve(config: AdminConfig | None = None) -> None:
    """Serves until SIGTERM/SIGINT; the calling process becomes gunicorn's arbiter."""
    config = config or AdminConfig.from_env()
    if not config.admin_token:
        log.warning("CCAPI_ADMIN_TOKEN is not set: the core will refuse the admin site's calls")
    log.info("admin site on http://%s:%s, core at %s", config.host, config.port,
             config.core_addr)
    _Gunicorn(config).run()


if __name__ == "__main__":
    serve()
