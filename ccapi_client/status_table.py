"""The one table from a gRPC status (and ErrorInfo reason) to the HTTP error an
OpenAI client sees. Plain data with no web framework, so the core can use it
to record in its request log the status a client saw."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

# OpenAI error types.
INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
RATE_LIMIT = "requests"  # what OpenAI sends with code "rate_limit_exceeded"


@dataclass(frozen=True)
class Row:
    status: int
    type: str
    code: str | None
    message: str | None = None  # replaces the core's message (which may be internal)
    default: str = "The request failed."  # used when the core sent no message


_C = grpc.StatusCode

# (gRPC status, ErrorInfo reason or None for "any other reason") -> HTTP error.
# This is the only place a gRPC status becomes an HTTP status.
STATUS_TABLE: dict[tuple[grpc.StatusCode, str | None], Row] = {
    (_C.INVALID_ARGUMENT, None): Row(400, INVALID_REQUEST, None),
    (_C.OUT_OF_RANGE, None): Row(400, INVALID_REQUEST, None),
    (_C.UNAUTHENTICATED, "upstream_authentication"): Row(
        502,
        SERVER_ERROR,
        "upstream_authentication",
        default="The service's own Claude credentials were refused by the model provider.",
    ),
    (_C.UNAUTHENTICATED, None): Row(401, INVALID_REQUEST, "invalid_api_key"),
    (_C.PERMISSION_DENIED, None): Row(403, INVALID_REQUEST, "permission_denied"),
    (_C.NOT_FOUND, "model_not_found"): Row(404, INVALID_REQUEST, "model_not_found"),
    (_C.NOT_FOUND, None): Row(404, INVALID_REQUEST, "not_found"),
    (_C.ALREADY_EXISTS, None): Row(409, INVALID_REQUEST, "conflict"),
    (_C.ABORTED, None): Row(409, INVALID_REQUEST, "conflict"),
    (_C.RESOURCE_EXHAUSTED, "rate_limit_exceeded"): Row(429, RATE_LIMIT, "rate_limit_exceeded"),
    (_C.RESOURCE_EXHAUSTED, "insufficient_quota"): Row(
        429, "insufficient_quota", "insufficient_quota"
    ),
    (_C.RESOURCE_EXHAUSTED, "model_rate_limited"): Row(429, RATE_LIMIT, "model_rate_limited"),
    # An upload over the live size limit (FileService).
    (_C.RESOURCE_EXHAUSTED, "file_too_large"): Row(413, INVALID_REQUEST, "file_too_large"),
    (_C.RESOURCE_EXHAUSTED, None): Row(429, RATE_LIMIT, "rate_limit_exceeded"),
    (_C.FAILED_PRECONDITION, "missing_credentials"): Row(
        503,
        SERVER_ERROR,
        "missing_credentials",
        "The service has no Claude credentials: set ANTHROPIC_API_KEY or "
        "CLAUDE_CODE_OAUTH_TOKEN for the core.",
    ),
    (_C.FAILED_PRECONDITION, None): Row(400, INVALID_REQUEST, "failed_precondition"),
    (_C.UNAVAILABLE, "model_overloaded"): Row(503, SERVER_ERROR, "model_overloaded"),
    # The core's own caps: the admission queue is full, or a turn waited too long.
    (_C.UNAVAILABLE, "overloaded"): Row(
        503, SERVER_ERROR, "overloaded", default="The service is at capacity; retry later."
    ),
    # The model provider answered 5xx: a bad gateway from the client's point of view.
    (_C.UNAVAILABLE, "model_unavailable"): Row(502, SERVER_ERROR, "model_unavailable"),
    (_C.UNAVAILABLE, None): Row(503, SERVER_ERROR, "service_unavailable"),
    (_C.INTERNAL, "model_error"): Row(502, SERVER_ERROR, "model_error"),
    (_C.UNKNOWN, "model_error"): Row(502, SERVER_ERROR, "model_error"),
    # The model gave no document valid against the response format's schema
    # (core_service/agent/structured_output.py says why 502).
    (_C.INTERNAL, "structured_output_failed"): Row(502, SERVER_ERROR, "structured_output_failed"),
    (_C.INTERNAL, None): Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.UNKNOWN, None): Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.DATA_LOSS, None): Row(500, SERVER_ERROR, "internal_error", "The server had an error."),
    (_C.UNIMPLEMENTED, None): Row(501, INVALID_REQUEST, "not_implemented"),
    (_C.DEADLINE_EXCEEDED, None): Row(504, SERVER_ERROR, "timeout", "The request timed out."),
    # The client is normally gone already; 499 is nginx's "client closed request".
    (_C.CANCELLED, None): Row(499, INVALID_REQUEST, "cancelled", "The request was cancelled."),
}

CORE_UNAVAILABLE = Row(
    503, SERVER_ERROR, "core_unavailable", "The core service is unavailable; try again later."
)


def http_status(code: grpc.StatusCode, reason: str = "") -> int:
    """The HTTP status for a gRPC outcome."""
    if code == grpc.StatusCode.OK:
        return 200
    row = STATUS_TABLE.get((code, reason or None)) or STATUS_TABLE.get((code, None))
    return row.status if row is not None else 500
