"""Claude Code's failure reports -> our domain errors (and so gRPC statuses)."""

from __future__ import annotations

from core_service.errors import (
    InvalidArgument,
    ModelError,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    UpstreamUnauthenticated,
)


def from_api_status(status: int | None, detail: str = "") -> ServiceError:
    """The error for an HTTP status the model API answered with."""
    suffix = f": {detail}" if detail else ""
    if status == 429:
        return ResourceExhausted(
            "The model provider is rate limiting this service; retry shortly" + suffix,
            reason="model_rate_limited",
            retry_after_seconds=5,
        )
    if status == 529:
        return Unavailable(
            "The model is overloaded; retry shortly" + suffix, reason="model_overloaded"
        )
    if status in (401, 403):
        return UpstreamUnauthenticated(
            "The model provider refused this service's Claude credentials "
            "(check ANTHROPIC_API_KEY / CLAUDE_CODE_OAUTH_TOKEN)" + suffix
        )
    if status == 400 or status == 413:
        return InvalidArgument(
            "The model rejected the request" + suffix, reason="model_invalid_request"
        )
    if status is not None and status >= 500:
        return Unavailable(
            f"The model provider failed with HTTP {status}; retry shortly" + suffix,
            reason="model_unavailable",
        )
    return ModelError("Claude Code failed to complete the turn" + suffix)


# AssistantMessage.error values, for CLIs that report no HTTP status.
_BY_KIND: dict[str, int] = {
    "rate_limit": 429,
    "authentication_failed": 401,
    "billing_error": 403,
    "invalid_request": 400,
    "server_error": 500,
}


def from_assistant_error(kind: str, detail: str = "") -> ServiceError:
    return from_api_status(_BY_KIND.get(kind), detail)
