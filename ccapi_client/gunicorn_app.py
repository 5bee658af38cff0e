"""Serving an ASGI app under gunicorn with uvicorn workers: shared by the HTTP
facade and the admin site. The app is built in each worker after the fork (its
gRPC channel opens on first use there)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

with warnings.catch_warnings():
    # uvicorn points at the separate uvicorn-worker package; the bundled class works
    # with gunicorn 23+ and saves a dependency.
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker as _UvicornWorker


class AsyncioWorker(_UvicornWorker):  # type: ignore[misc,unused-ignore]
    """uvicorn worker on the plain asyncio loop (grpc.aio does not support uvloop).

    uvicorn's own proxy-header handling is off: by default it would take the
    client address from X-Forwarded-For on any connection from 127.0.0.1, so
    anyone on the host could pick the address the app sees. An app that trusts
    a proxy reads those headers itself.
    """

    CONFIG_KWARGS = {"loop": "asyncio", "http": "auto", "lifespan": "off",
                     "proxy_headers": False}


WORKER_CLASS = f"{AsyncioWorker.__module__}.{AsyncioWorker.__qualname__}"


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GunicornApp(BaseApplication):  # type: ignore[misc]
    """gunicorn's arbiter over ``load`` (called in each worker) with ``options``."""

    def __init__(self, load: Callable[[], Any], options: dict[str, Any]) -> None:
        self._load = load
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "worker_class": WORKER_CLASS,
            "accesslog": "-",
            "errorlog": "-",
            "preload_app": False,
            # Several gunicorns (tests, scaled services) share one $HOME; no control socket.
            "control_socket_disable": True,
            **self._options,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


def serve(
    load: Callable[[], Any], host: str, port: int, workers: int, options: dict[str, Any]
) -> None:
    """Runs gunicorn until SIGTERM/SIGINT; the calling process becomes its arbiter."""
    GunicornApp(load, {"bind": [bind_address(host, port)], "workers": workers, **options}).run()
