"""Every error the facade returns, rendered from the one gRPC-to-HTTP table
(`ccapi_client/status_table.py`).

Errors are raised as :class:`ApiError` (or come up as ``grpc.aio.AioRpcError``)
and rendered by the handlers registered in :func:`register_error_handlers` as
OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import falcon
import falcon.asgi
import grpc

from ccapi_client.rich_status import read_details
from ccapi_client.status_table import (
    _C,
    CORE_UNAVAILABLE,
    INVALID_REQUEST,
    RATE_LIMIT,
    SERVER_ERROR,
    STATUS_TABLE,
)

__all__ = ["INVALID_REQUEST", "RATE_LIMIT", "SERVER_ERROR", "STATUS_TABLE", "ApiError"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error response in OpenAI's shape; ``status`` is the HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
        extra_headers: dict[str, str] | None = None,
        from_core: bool = False,
    ) -> None:
        super().__init__(message)
        # True when the core decided it (and so already logged the request).
        self.from_core = from_core
        # e.g. x-ratelimit-* from the core, sent along with the error.
        self.extra_headers = extra_headers or {}
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON body, also used for the `data: {"error": ...}` SSE line."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """400 invalid_request_error."""
    return ApiError(400, message, param=param, code=code)


def unsupported(param: str, detail: str = "") -> ApiError:
    """400 for an OpenAI parameter the service does not support (yet)."""
    msg = f"The parameter '{param}' is not supported by this service"
    return ApiError(
        400, msg + (f": {detail}" if detail else "."), param=param, code="unsupported_parameter"
    )


def from_status(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    param: str | None = None,
    retry_after: int | None = None,
) -> ApiError:
    """The HTTP error for a gRPC status (+ ErrorInfo reason)."""
    row = STATUS_TABLE.get((code, reason or None)) or STATUS_TABLE.get((code, None))
    if row is None:
        row = STATUS_TABLE[(_C.UNKNOWN, None)]
    if row.status == 429 and retry_after is None:
        retry_after = 1
    return ApiError(
        row.status,
        row.message or message or row.default,
        type=row.type,
        code=row.code,
        param=param if row.status < 500 else None,
        retry_after=retry_after if row.status in (429, 503) else None,
        from_core=True,
    )


def from_turn_failed(code: int, message: str, reason: str, retry_after_seconds: int) -> ApiError:
    """The HTTP error for a TurnFailed event (code is a google.rpc.Code int)."""
    status = _CODES_BY_INT.get(code, _C.UNKNOWN)
    return from_status(status, message, reason, retry_after=retry_after_seconds or None)


_CODES_BY_INT = {c.value[0]: c for c in grpc.StatusCode}


def from_rpc_error(err: grpc.aio.AioRpcError, *, started: bool = True) -> ApiError:
    """The HTTP error for a failed RPC.

    ``started=False`` means no response message had arrived yet: an UNAVAILABLE
    without a reason then means the core itself could not be reached.
    """
    code = err.code()
    details = read_details(err.trailing_metadata())
    reason, param = details.reason, details.param or None
    retry = details.retry_after_seconds or None
    if code == _C.UNAVAILABLE and not reason and not started:
        row = CORE_UNAVAILABLE
        return ApiError(
            row.status, row.message or "", type=row.type, code=row.code, retry_after=retry or 1
        )
    error = from_status(code, err.details() or "", reason, param, retry)
    error.extra_headers.update(rate_limit_headers(err.trailing_metadata()))
    return error


def rate_limit_headers(metadata: Any) -> dict[str, str]:
    """The core's x-ratelimit-* metadata, as HTTP headers."""
    return {
        key: value
        for key, value in (metadata or ())
        if key.startswith("x-ratelimit-") and isinstance(value, str)
    }


def _falcon_error(exc: falcon.HTTPError) -> ApiError:
    status = exc.status_code
    message = exc.description or exc.title or "Request failed."
    if status == 404:
        return ApiError(404, "Unknown request URL.", code="unknown_url")
    if status == 405:
        return ApiError(405, "Method not allowed.", code="method_not_allowed")
    if status == 413:
        return ApiError(413, message, code="request_too_large")
    if status >= 500:
        return ApiError(status, "The server had an error.", type=SERVER_ERROR)
    return ApiError(status, message)


Reporter = Callable[[falcon.asgi.Request, "ApiError"], None]


def register_error_handlers(app: falcon.asgi.App[Any, Any], report: Reporter | None = None) -> None:
    """Every error rendered as OpenAI's shape; errors the facade decided itself
    are also handed to `report` (the core's request log). Most specific last
    wins in Falcon; the generic handler is added first."""

    async def render(req: falcon.asgi.Request, resp: falcon.asgi.Response, err: ApiError) -> None:
        resp.status = err.status
        resp.media = err.body()
        for name, value in err.headers().items():
            resp.set_header(name, value)
        if report is not None and not err.from_core:
            report(req, err)

    async def handle_api_error(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: ApiError, params: dict[str, Any]
    ) -> None:
        await render(req, resp, ex)

    async def handle_rpc_error(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        ex: grpc.aio.AioRpcError,
        params: dict[str, Any],
    ) -> None:
        await render(req, resp, from_rpc_error(ex, started=False))

    async def handle_http_error(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        ex: falcon.HTTPError,
        params: dict[str, Any],
    ) -> None:
        await render(req, resp, _falcon_error(ex))
        headers = ex.headers
        if isinstance(headers, dict):
            for name, value in headers.items():
                if name.lower() in ("allow", "retry-after"):
                    resp.set_header(name, value)

    async def handle_unexpected(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
    ) -> None:
        log.exception("unexpected error on %s %s", req.method, req.path)
        await render(req, resp, ApiError(500, "The server had an error.", type=SERVER_ERROR))

    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(grpc.aio.AioRpcError, handle_rpc_error)
    app.add_error_handler(ApiError, handle_api_error)
