"""Settings the core's live configuration can change without a restart: CORS
origins, the request body limit and the log level. Each worker asks the core's
RuntimeService at most every few seconds; until the configuration was
changed live (version 0) the environment's values stay in force."""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon
import falcon.asgi
import grpc

from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3.0


class LiveSettings:
    def __init__(
        self, config: FacadeConfig, core: CoreClient, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self.cors_origins: tuple[str, ...] = config.cors_origins
        self.max_body_bytes = config.max_body_bytes
        self._default_body_bytes = config.max_body_bytes
        self.version = 0
        self._core = core
        self._refresh_seconds = refresh_seconds
        self._checked = 0.0

    async def refresh_if_due(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._refresh_seconds:
            return
        self._checked = now
        try:
            runtime = await self._core.runtime_config()
        except grpc.aio.AioRpcError:
            return  # keep the last known values while the core is away
        if runtime.version > 0 and runtime.version != self.version:
            self.version = runtime.version
            self.cors_origins = tuple(runtime.cors_origins)
            self.max_body_bytes = runtime.max_body_bytes
            if runtime.log_level:
                logging.getLogger().setLevel(runtime.log_level.upper())
            log.info("live settings applied", extra={"version": runtime.version})

    async def body_limit(self) -> int:
        """The body limit in force now, for what no HTTP request carries (a
        WebSocket message): refreshed as for a request, 0 meaning the default."""
        await self.refresh_if_due()
        return self.max_body_bytes or self._default_body_bytes


class LiveSettingsMiddleware:
    """Refreshes the live settings and applies them to this request."""

    def __init__(self, settings: LiveSettings, cors: falcon.CORSMiddleware[Any, Any]) -> None:
        self._settings = settings
        self._cors = cors

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._settings.refresh_if_due()
        origins = self._settings.cors_origins
        self._cors.allow_origins = "*" if "*" in origins else frozenset(origins)
        req.context.max_body_bytes = self._settings.max_body_bytes


def cors_middleware() -> falcon.CORSMiddleware[Any, Any]:
    # No origin is allowed until configured; LiveSettingsMiddleware sets them.
    return falcon.CORSMiddleware(
        allow_origins=[],
        expose_headers=[
            "x-request-id",
            "X-Session-Id",
            "Retry-After",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    )


def body_limit(req: falcon.asgi.Request, default: int) -> int:
    limit: Any = getattr(req.context, "max_body_bytes", None)
    return int(limit) if limit else default
