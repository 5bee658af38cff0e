"""Probes. None of them ever runs a model turn."""

from __future__ import annotations

import falcon
import falcon.asgi

from http_facade.core_client import CoreClient


class Live:
    """/health and /health/live: the process is up; the core is not asked."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


# While the core is down (`ccapi serve` restarts it within seconds).
RETRY_AFTER_SECONDS = 1


class Ready:
    """/health/ready: the core answers grpc.health.v1 SERVING (it checks its
    database). Fails while the core restarts; /health/live stays up."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if await self.core.health():
            resp.media = {"status": "ready"}
        else:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            resp.media = {"status": "unavailable", "core": self.core.addr}
