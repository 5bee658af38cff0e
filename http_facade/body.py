"""Reading a JSON request body within the configured size limit."""

from __future__ import annotations

import json
from typing import Any

import falcon.asgi

from http_facade.errors import ApiError, invalid_request


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The request body is larger than the limit of {limit} bytes.",
        code="request_too_large",
    )


async def read_json(req: falcon.asgi.Request, limit: int) -> Any:
    """The parsed body; 413 over ``limit`` bytes, 400 when it is not JSON."""
    if req.content_length is not None and req.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    # Kept for the request log, should the request be refused after this.
    req.context.raw_body = raw
    if not raw.strip():
        raise invalid_request("The request body is empty; send a JSON object.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid_request(
            "We could not parse the JSON body of your request. Send valid JSON "
            "with Content-Type: application/json."
        ) from None
