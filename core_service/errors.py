"""The core's domain errors. Each names the gRPC status it means; the one
interceptor in `interceptors.py` turns them into rich gRPC statuses."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """Base: a failure the caller may see. `message` must be safe to show."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        param: str | None = None,
        retry_after_seconds: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Extra response metadata for the caller, e.g. x-ratelimit-* headers.
        self.headers = headers or {}
        if reason is not None:
            self.reason = reason
        self.param = param
        self.retry_after_seconds = retry_after_seconds


class InvalidArgument(ServiceError):
    """INVALID_ARGUMENT: the request is malformed; `param` names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "invalid_request"


class Unauthenticated(ServiceError):
    """UNAUTHENTICATED: missing, unknown, expired or revoked API key."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "invalid_api_key"


class PermissionDenied(ServiceError):
    """PERMISSION_DENIED: the key may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "permission_denied"


class NotFound(ServiceError):
    """NOT_FOUND: no such model, session, turn or file (for this key)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "not_found"


class Busy(ServiceError):
    """ABORTED: the session is running another turn."""

    code = grpc.StatusCode.ABORTED
    reason = "session_busy"


class ResourceExhausted(ServiceError):
    """RESOURCE_EXHAUSTED: a limit was hit (ours or the model provider's)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "rate_limit_exceeded"


class Unavailable(ServiceError):
    """UNAVAILABLE: the model is overloaded or unreachable; retrying may work."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "model_unavailable"


class FailedPrecondition(ServiceError):
    """FAILED_PRECONDITION: the service is not set up for this (e.g. no Claude credentials)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "failed_precondition"


class ModelError(ServiceError):
    """INTERNAL: the model provider or Claude Code failed in a way retrying won't fix."""

    code = grpc.StatusCode.INTERNAL
    reason = "model_error"


class UpstreamUnauthenticated(ServiceError):
    """UNAUTHENTICATED: the service's own Claude credentials were refused."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "upstream_authentication"


class Cancelled(ServiceError):
    """CANCELLED: the turn was cancelled."""

    code = grpc.StatusCode.CANCELLED
    reason = "cancelled"


ERROR_DOMAIN = "claudecode.v1"
