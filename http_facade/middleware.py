"""Cross-cutting HTTP concerns: request ids, security headers, body size limit."""

from __future__ import annotations

import re
import uuid
from typing import Any

import falcon.asgi

from http_facade.body import too_large

UPLOAD_PATH = "/v1/files"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-site",
    "Cache-Control": "no-store",
}


class RequestIdMiddleware:
    """Gives every request an id (the client's x-request-id if sane) and echoes it."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header("X-Request-Id") or ""
        req.context.request_id = given if _SAFE_ID.match(given) else f"req_{uuid.uuid4().hex}"

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        rid = getattr(req.context, "request_id", None) or f"req_{uuid.uuid4().hex}"
        resp.set_header("x-request-id", rid)


class SecurityHeadersMiddleware:
    """Basic hardening headers on every response."""

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        for name, value in SECURITY_HEADERS.items():
            if resp.get_header(name) is None:
                resp.set_header(name, value)


class BodyLimitMiddleware:
    """Refuses a declared Content-Length over the limit before anything reads it.

    Chunked bodies without a length are cut while reading (see body.read_json).
    File uploads are exempt: they stream to the core, which holds them to the
    live max_file_bytes instead.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.method == "POST" and req.path == UPLOAD_PATH:
            return
        # The live configuration (LiveSettingsMiddleware) may have changed it.
        limit = int(getattr(req.context, "max_body_bytes", None) or self.limit)
        if req.content_length is not None and req.content_length > limit:
            raise too_large(limit)
