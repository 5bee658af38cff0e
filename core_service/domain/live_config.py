"""The live configuration: what an admin may change while the service runs
(validated and versioned by core_service/live_config.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class LiveConfig:
    # Alias -> model id.
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    # Claude Code tools a key gets when its own list is empty.
    default_allowed_tools: tuple[str, ...] = ()
    log_level: str = ""
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 0
    log_retention_days: int = 0
    workspace_retention_days: int = 0
    pool_size: int = 0
    claude_max_retries: int = 0
    log_bodies: bool = False
    max_live_processes: int = 0
    max_running_turns: int = 0
    max_queued_turns: int = 0
    max_queue_wait_seconds: int = 0
    max_concurrent_starts: int = 0
    max_file_bytes: int = 0
    file_retention_days: int = 0


@dataclass(frozen=True)
class ConfigChange:
    """One saved version, for the history."""

    version: int
    updated_by: str
    # Unix seconds.
    updated_at: int
    changed_fields: tuple[str, ...]
    config: LiveConfig


FIELDS = tuple(f.name for f in fields(LiveConfig))
