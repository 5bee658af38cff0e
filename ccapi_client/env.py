"""Reading CCAPI_* settings from the environment: shared by the facade and the admin site.

Kept free of web imports so that either can use it without loading the other.
An unset or blank variable takes the default; a malformed one is an error
naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, "").strip() or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {raw!r}")


def core_addr(env: Mapping[str, str]) -> str:
    """The core's gRPC address: CCAPI_CORE_ADDR, else the local CCAPI_GRPC_PORT."""
    grpc_port = env_int(env, "CCAPI_GRPC_PORT", 50051)
    return env_str(env, "CCAPI_CORE_ADDR", f"127.0.0.1:{grpc_port}")
