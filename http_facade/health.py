"""Probes. None of them ever runs a model turn."""

from __future__ import annotations

import falcon
import falcon.asgi

from http_facade.core_client import CoreClient


class Live:
    """/health and /health/live: the process is up; the core is not asked."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


class Ready:
    """/health/ready: the core answers grpc.health.v1 SERVING (it checks its database)."""

    def __init__(self, core: CoreClient) -> None:
        self.core = core

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if await self.core.health():
            resp.media = {"status": "ready"}
        else:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "core": self.core.addr}
