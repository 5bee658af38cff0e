"""The Falcon ASGI app: OpenAI-compatible HTTP in front of the core's gRPC API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import falcon
import falcon.asgi

from ccapi_client.telemetry import METRICS_PATH, MetricsExposure
from ccapi_client.web_metrics import MetricsMiddleware, MetricsResource, SiteMetrics
from http_facade import disconnect
from http_facade.chat.resource import ChatCompletions
from http_facade.client_address import ClientAddressMiddleware
from http_facade.config import FacadeConfig
from http_facade.core_client import CoreClient
from http_facade.errors import register_error_handlers
from http_facade.files.resource import File, FileContent, Files
from http_facade.health import Live, Ready
from http_facade.live_settings import LiveSettings, LiveSettingsMiddleware, cors_middleware
from http_facade.middleware import (
    BodyLimitMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from http_facade.models.resource import Model, Models
from http_facade.openapi import OpenAPI
from http_facade.rejections import RejectionReporter
from http_facade.responses.compact import ResponsesCompact
from http_facade.responses.resource import (
    Response,
    ResponseCancel,
    ResponseInputItems,
    Responses,
)
from http_facade.responses.websocket import ResponsesSocket
from http_facade.sessions.resource import Session, SessionFile, SessionFiles, Sessions

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class FacadeApp(falcon.asgi.App[Any, Any]):
    """falcon.asgi.App that tells resources at once when the client disconnects."""

    core: CoreClient

    async def __call__(  # type: ignore[override]
        self, scope: MutableMapping[str, Any], receive: disconnect.Receive, send: Send
    ) -> None:
        if scope.get("type") != "http":
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]
            return
        wrapped, run_cleanups = disconnect.install(scope, receive)
        try:
            await super().__call__(scope, wrapped, send)  # type: ignore[arg-type]
        finally:
            run_cleanups()


def create_app(
    config: FacadeConfig | None = None,
    core: CoreClient | None = None,
    exposure: MetricsExposure | None = None,
) -> FacadeApp:
    """Builds the app; the core channel is only opened on the first request."""
    config = config or FacadeConfig.from_env()
    core = core or CoreClient(config.core_addr, config.unary_timeout_seconds, config.credential)
    settings = LiveSettings(config, core)
    cors = cors_middleware()
    metrics = SiteMetrics("ccapi_http", with_model=True)
    middleware: list[Any] = [
        # First: its clock starts before, and its count comes after, all the others.
        MetricsMiddleware(metrics),
        LiveSettingsMiddleware(settings, cors),
        cors,
        RequestIdMiddleware(),
        ClientAddressMiddleware(config.trust_proxy),
        SecurityHeadersMiddleware(),
        BodyLimitMiddleware(config.max_body_bytes),
    ]
    app = FacadeApp(middleware=middleware)
    app.core = core
    app.req_options.strip_url_path_trailing_slash = True

    app.add_route("/v1/chat/completions", ChatCompletions(core, config))
    app.add_route("/v1/responses", Responses(ResponsesSocket(core, config, settings, metrics)))
    app.add_route("/v1/responses/compact", ResponsesCompact(core, config))
    app.add_route("/v1/responses/{response_id}", Response(core, config.keepalive_seconds))
    app.add_route("/v1/responses/{response_id}/cancel", ResponseCancel(core))
    app.add_route("/v1/responses/{response_id}/input_items", ResponseInputItems(core))
    app.add_route("/v1/sessions", Sessions(core))
    app.add_route("/v1/sessions/{session_id}", Session(core))
    app.add_route("/v1/sessions/{session_id}/files", SessionFiles(core))
    app.add_route("/v1/sessions/{session_id}/files/{path:path}", SessionFile(core))
    app.add_route("/v1/files", Files(core))
    app.add_route("/v1/files/{file_id}", File(core))
    app.add_route("/v1/files/{file_id}/content", FileContent(core))
    app.add_route("/v1/models", Models(core))
    app.add_route("/v1/models/{model_id:path}", Model(core))
    live = Live()
    app.add_route("/health", live)
    app.add_route("/health/live", live)
    app.add_route("/health/ready", Ready(core))
    app.add_route("/openapi.json", OpenAPI())
    app.add_route(METRICS_PATH, MetricsResource(metrics, exposure or MetricsExposure.from_env()))
    register_error_handlers(app, RejectionReporter(core))
    return app
