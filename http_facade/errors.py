"""Every error the facade returns, and THE one table from gRPC status to HTTP.

Errors are raised as :class:`ApiError` (or come up as ``grpc.aio.AioRpcError``)
and rendered by the handlers registered in :func:`register_error_handlers` as
OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import falcon
import falcon.asgi
import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

# OpenAI error types.
INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
RATE_LIMIT = "requests"  # what OpenAI sends with code "rate_limit_exceeded"


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
    ) -> None:
        super().__init__(message)
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


@dataclass(frozen=True)
class _Row:
    status: int
    type: str
    code: str | None
    message: str | None = None  # replaces the core's message (which may be internal)
    default: str = "The request failed."  # used when the core sent no message


_C = grpc.StatusCode

# (gRPC status, ErrorInfo reason or None for "any other reason") -> HTTP error.
# This is the only place a gRPC status becomes an HTTP status.
STATUS_TABLE: dict[tuple[grpc.StatusCode, str | None], _Row] = {
    (_C.INVALID_ARGUMENT, None): _Row(400, INVALID_REQUEST, None),
    (_C.OUT_OF_RANGE, None): _Row(400, INVALID_REQUEST, None),
    (_C.UNAUTHENTICATED, "upstream_authentication"): _Row(
        502,
        SERVER_ERROR,
        "upstream_authentication",
        default="The service's own Claude credentials were refused by the model provider.",
    ),
    (_C.UNAUTHENTICATED, None): _Row(401, INVALID_REQUEST, "invalid_api_key"),
    (_C.PERMISSION_DENIED, None): _Row(403, INVALID_REQUEST, "permission_denied"),
    (_C.NOT_FOUND, "model_not_found"): _Row(404, INVALID_REQUEST, "model_not_found"),
    (_C.NOT_FOUND, None): _Row(404, INVALID_REQUEST, "not_found"),
    (_C.ALREADY_EXISTS, None): _Row(409, INVALID_REQUEST, "conflict"),
    (_C.ABORTED, None): _Row(409, INVALID_REQUEST, "conflict"),
    (_C.RESOURCE_EXHAUSTED, "rate_limit_exceeded"): _Row(429, RATE_LIMIT, "rate_limit_exceeded"),
    (_C.RESOURCE_EXHAUSTED, "insufficient_quota"): _Row(
        429, "insufficient_quota", "insufficient_quota"
    ),
    (_C.RESOURCE_EXHAUSTED, "model_rate_limited"): _Row(429, RATE_LIMIT, "model_rate_limited"),
    (_C.RESOURCE_EXHAUSTED, None): _Row(429, RATE_LIMIT, "rate_limit_exceeded"),
    (_C.FAILED_PRECONDITION, "missing_credentials"): _Row(
        503,
        SERVER_ERROR,
        "missing_credentials",
        "The service has no Claude credentials: set ANTHROPIC_API_KEY or "
        "CLAUDE_CODE_OAUTH_TOKEN for the core.",
    ),
    (_C.FAILED_PRECONDITION, None): _Row(400, INVALID_REQUEST, "failed_precondition"),
    (_C.UNAVAILABLE, "model_overloaded"): _Row(503, SERVER_ERROR, "model_overloaded"),
    # The model provider answered 5xx: a bad gateway from the client's point of view.
    (_C.UNAVAILABLE, "model_unavailable"): _Row(502, SERVER_ERROR, "model_unavailable"),
    (_C.UNAVAILABLE, None): _Row(503, SERVER_ERROR, "service_unavailable"),
    (_C.INTERNAL, "model_error"): _Row(502, SERVER_ERROR, "model_error"),
    (_C.UNKNOWN, "model_error"): _Row(502, SERVER_ERROR, "model_error"),
    (_C.INTERNAL, None): _Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.UNKNOWN, None): _Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.DATA_LOSS, None): _Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.UNIMPLEMENTED, None): _Row(501, INVALID_REQUEST, "not_implemented"),
    (_C.DEADLINE_EXCEEDED, None): _Row(504, SERVER_ERROR, "timeout", "The request timed out."),
    # The client is normally gone already; 499 is nginx's "client closed request".
    (_C.CANCELLED, None): _Row(499, INVALID_REQUEST, "cancelled", "The request was cancelled."),
}

CORE_UNAVAILABLE = _Row(
    503, SERVER_ERROR, "core_unavailable", "The core service is unavailable; try again later."
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
    )


def from_turn_failed(code: int, message: str, reason: str, retry_after_seconds: int) -> ApiError:
    """The HTTP error for a TurnFailed event (code is a google.rpc.Code int)."""
    status = _CODES_BY_INT.get(code, _C.UNKNOWN)
    return from_status(status, message, reason, retry_after=retry_after_seconds or None)


_CODES_BY_INT = {c.value[0]: c for c in grpc.StatusCode}


def _rich_details(err: grpc.aio.AioRpcError) -> tuple[str, str | None, int | None]:
    """(reason, param, retry_after) from the grpc-status-details-bin trailer."""
    reason, param, retry = "", None, None
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            continue
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                param = info.metadata.get("param") or None
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                detail.Unpack(ri)
                secs = ri.retry_delay.seconds + (1 if ri.retry_delay.nanos > 0 else 0)
                retry = max(1, secs)
    return reason, param, retry


def from_rpc_error(err: grpc.aio.AioRpcError, *, started: bool = True) -> ApiError:
    """The HTTP error for a failed RPC.

    ``started=False`` means no response message had arrived yet: an UNAVAILABLE
    without a reason then means the core itself could not be reached.
    """
    code = err.code()
    reason, param, retry = _rich_details(err)
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


async def _render(req: falcon.asgi.Request, resp: falcon.asgi.Response, err: ApiError) -> None:
    resp.status = err.status
    resp.media = err.body()
    for name, value in err.headers().items():
        resp.set_header(name, value)


async def _handle_api_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: ApiError, params: dict[str, Any]
) -> None:
    await _render(req, resp, ex)


async def _handle_rpc_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    ex: grpc.aio.AioRpcError,
    params: dict[str, Any],
) -> None:
    await _render(req, resp, from_rpc_error(ex, started=False))


async def _handle_http_error(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    ex: falcon.HTTPError,
    params: dict[str, Any],
) -> None:
    await _render(req, resp, _falcon_error(ex))
    headers = ex.headers
    if isinstance(headers, dict):
        for name, value in headers.items():
            if name.lower() in ("allow", "retry-after"):
                resp.set_header(name, value)


async def _handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    await _render(req, resp, ApiError(500, "The server had an error.", type=SERVER_ERROR))


def register_error_handlers(app: falcon.asgi.App[Any, Any]) -> None:
    """Most specific last wins in Falcon; the generic handler is added first."""
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    app.add_error_handler(grpc.aio.AioRpcError, _handle_rpc_error)
    app.add_error_handler(ApiError, _handle_api_error)
