"""Reading a JSON request body within the configured size limit."""

from __future__ import annotations

import json
import re
from typing import Any

import falcon.asgi

from http_facade.errors import ApiError, invalid_request


def too_large(limit: int, what: str = "request body") -> ApiError:
    return ApiError(
        413,
        f"The {what} is larger than the limit of {limit} bytes.",
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
    return parse_json(
        raw,
        "We could not parse the JSON body of your request. Send valid JSON "
        "with Content-Type: application/json.",
    )


def parse_json(raw: bytes, not_json: str) -> Any:
    """``raw`` parsed; a 400 with ``not_json`` when it is not JSON, or one naming
    the first string that holds a lone surrogate."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid_request(not_json) from None
    # Valid JSON may still escape half of a UTF-16 pair ("\ud800"): such a
    # string is no Unicode text and cannot be passed on.
    if _SURROGATE_ESCAPE.search(raw):
        where = lone_surrogate(body)
        if where is not None:
            raise invalid_request(
                f"The value of '{where or 'body'}' contains a lone UTF-16 surrogate "
                "(an escape such as \\ud800 without its pair); send valid Unicode text.",
                param=where or None,
            )
    return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """The path (``messages[0].content``) of the first string holding a lone
    surrogate, "" for the top level; None when there is none."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return where
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None
