"""Small helpers the views share."""

from __future__ import annotations

from ccapi_client.admin import CoreError


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else is dropped.

    Only printable ASCII: what the site itself links to is percent-encoded, a
    Location header cannot carry anything else, and browsers read some other
    characters (e.g. "。") as dots or slashes.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    if not all(32 < ord(c) < 127 for c in target):
        return ""
    return target


def param_field(param: str, aliases: dict[str, str] | None = None) -> str:
    """The form field a core error's ``param`` names: "config.pool_size" -> "pool_size"."""
    name = param
    for prefix in ("config.", "key.", "user.", "limits.", "key.limits."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = name.split("[")[0]
    if aliases and name in aliases:
        return aliases[name]
    return name


def core_field_errors(
    error: CoreError, fallback: str, aliases: dict[str, str] | None = None,
    known: set[str] | None = None,
) -> dict[str, str]:
    """{field: message} for an INVALID_ARGUMENT, on ``fallback`` when no known field."""
    field = param_field(error.param, aliases) if error.param else ""
    if not field or (known is not None and field not in known):
        field = fallback
    return {field: error.message}
