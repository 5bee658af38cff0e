"""Request-side helpers shared by the features: validation errors as OpenAI
params, image URLs as proto images, and what both OpenAI APIs map the same way."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ccapi_client.enums import REASONING_EFFORTS
from claudecode.v1 import content_pb2
from http_facade.errors import invalid_request, unsupported

M = TypeVar("M", bound=BaseModel)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.DOTALL
)
_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none", "null"}

ROLES = {
    "system": content_pb2.ROLE_SYSTEM,
    "developer": content_pb2.ROLE_DEVELOPER,
    "user": content_pb2.ROLE_USER,
    "assistant": content_pb2.ROLE_ASSISTANT,
}


def reasoning_effort(effort: str | None) -> str:
    """Claude Code's effort for an OpenAI ``reasoning_effort`` ("" for the default)."""
    return REASONING_EFFORTS.get(effort or "", "")


def param_of(loc: Sequence[int | str]) -> str:
    """A pydantic error location as an OpenAI param: ``messages[0].content``.

    Union branch names and discriminator tags (never identifiers) are dropped.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part not in _TYPE_NAMES:
            out += f".{part}" if out else part
    return out or "body"


def _best_error(exc: ValidationError) -> dict[str, Any]:
    errors = list(exc.errors(include_url=False))
    for err in errors:
        if err["type"] == "extra_forbidden":
            return dict(err)
    return dict(max(errors, key=lambda e: len(e["loc"])))


def validate_model(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``, or a 400 naming the param (unknown, missing or invalid)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = _best_error(exc)
        param = param_of(err["loc"])
        if err["type"] == "extra_forbidden":
            raise invalid_request(
                f"Unrecognized request argument supplied: {param}", param, "unknown_parameter"
            ) from None
        if err["type"] == "missing":
            raise invalid_request(
                f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
            ) from None
        raise invalid_request(
            f"Invalid value for '{param}': {err['msg']}.", param, "invalid_value"
        ) from None


def validate_body(
    body: Any,
    model: type[M],
    harmless: Mapping[str, Callable[[Any], bool]],
    check_unsupported: Callable[[dict[str, Any]], None],
) -> M:
    """The request body as ``model``, or an ApiError (400) naming the param.

    Parameters the service refuses are checked on the raw body first (``harmless``
    tells their accepted values, ``check_unsupported`` looks inside), so they get
    ``code: "unsupported_parameter"`` rather than a schema error.
    """
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    for name, is_harmless in harmless.items():
        if name in body and not is_harmless(body[name]):
            raise unsupported(name)
    check_unsupported(body)
    return validate_model(model, body)


def image_from_url(url: str, param: str) -> content_pb2.Image:
    """An image part's URL (https or base64 data URL) as a proto Image; 400 naming ``param``."""
    if url.startswith("data:"):
        m = _DATA_URL.match(url)
        if not m:
            raise invalid_request(
                "Image data URLs must look like data:image/png;base64,...",
                param,
                "invalid_image_url",
            )
        media_type = m.group("type").lower()
        if media_type not in IMAGE_TYPES:
            raise invalid_request(
                f"Unsupported image type '{media_type}'; use one of {', '.join(IMAGE_TYPES)}.",
                param,
                "invalid_image_format",
            )
        try:
            data = base64.b64decode(m.group("data"), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request(
                "The image data is not valid base64.", param, "invalid_image_url"
            ) from None
        if not data:
            raise invalid_request("The image is empty.", param, "invalid_image_url")
        return content_pb2.Image(media_type=media_type, data=data)
    if url.startswith(("https://", "http://")) and len(url) > 10:
        return content_pb2.Image(url=url)
    raise invalid_request(
        "Image URLs must be http(s) or base64 data URLs.", param, "invalid_image_url"
    )
