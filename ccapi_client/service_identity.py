"""The HTTP facade's identity towards the core.

The facade proves it is the facade with a credential derived from the
service's admin token, which `ccapi serve` hands every part: no extra secret
to set up, and the credential itself opens nothing else (AdminService wants
the token, which the credential does not reveal).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

from ccapi_client.env import env_str

_FACADE_LABEL = b"ccapi-facade-credential-v1"


def facade_credential(admin_token: str) -> str:
    """The facade's credential for ``admin_token``; empty when there is no token."""
    if not admin_token:
        return ""
    return hmac.new(admin_token.encode(), _FACADE_LABEL, hashlib.sha256).hexdigest()


def is_facade_credential(presented: str, admin_token: str) -> bool:
    """Whether ``presented`` is the facade's credential (constant-time)."""
    expected = facade_credential(admin_token)
    return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


def admin_token_of(env: Mapping[str, str]) -> str:
    """CCAPI_ADMIN_TOKEN, else the token `ccapi serve` wrote to the data dir."""
    token = env_str(env, "CCAPI_ADMIN_TOKEN", "")
    if token:
        return token
    data_dir = Path(env_str(env, "CCAPI_DATA_DIR", "./data"))
    try:
        return (data_dir / "admin-token").read_text().strip()
    except OSError:
        return ""
