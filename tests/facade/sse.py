"""Parsing an SSE body strictly, the way the facade promises to write it."""

from __future__ import annotations

import json
from typing import Any


def events(body: str) -> tuple[list[Any], list[str]]:
    """(data payloads in order, comment lines). Fails on any other field."""
    datas: list[Any] = []
    comments: list[str] = []
    assert body.endswith("\n\n"), body[-50:]
    for block in body.split("\n\n"):
        if not block:
            continue
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                payload = line[len("data: ") :]
                datas.append(payload if payload == "[DONE]" else json.loads(payload))
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
    return datas, comments
