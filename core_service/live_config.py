"""Live configuration: stored in the database, versioned, validated, with who
changed what. Every process polls the newest version and applies it without
a restart (`LiveConfigStore.refresh`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core_service.agent.permissions import ALLOWED_BY_DEFAULT
from core_service.config import CoreConfig
from core_service.db.models import ConfigVersion
from core_service.domain import codec
from core_service.domain.live_config import FIELDS, ConfigChange, LiveConfig
from core_service.errors import Busy, InvalidArgument
from core_service.file_store import FilePolicy

LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_BODY_CEILING = 100 * 1024 * 1024
MAX_FILE_CEILING = 4 * 1024 * 1024 * 1024
# What a client may send as a model name: OpenAI's ids, ours, and vendor
# paths like "openai/gpt-4o". Anything else (markup, spaces) is a typo.
ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
# An origin as browsers send it: scheme, host, optional port, nothing more.
ORIGIN_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def defaults(config: CoreConfig) -> LiveConfig:
    """Version 0: what the environment says."""
    return LiveConfig(
        model_aliases=dict(config.model_aliases),
        default_allowed_tools=(),
        log_level=config.log_level,
        cors_origins=(),
        max_body_bytes=10 * 1024 * 1024,
        log_retention_days=30,
        workspace_retention_days=30,
        pool_size=config.pool_size,
        claude_max_retries=config.claude_max_retries,
        log_bodies=True,
        max_file_bytes=100 * 1024 * 1024,
        file_retention_days=30,
        max_live_processes=config.max_live_processes,
        max_running_turns=config.max_running_turns,
        max_queued_turns=config.max_queued_turns,
        max_queue_wait_seconds=max(1, round(config.max_queue_wait_seconds)),
        max_concurrent_starts=config.max_concurrent_starts,
    )


def file_policy(config: LiveConfig) -> FilePolicy:
    return FilePolicy(config.max_file_bytes, config.file_retention_days)


def validate(config: LiveConfig, known_models: set[str]) -> None:
    """Raises InvalidArgument whose `param` names the bad field."""
    if config.log_level not in LOG_LEVELS:
        raise InvalidArgument(
            f"log_level must be one of {', '.join(LOG_LEVELS)}.", param="log_level"
        )
    if not 1024 <= config.max_body_bytes <= MAX_BODY_CEILING:
        raise InvalidArgument(
            f"max_body_bytes must be between 1024 and {MAX_BODY_CEILING}.", param="max_body_bytes"
        )
    if not 1024 <= config.max_file_bytes <= MAX_FILE_CEILING:
        raise InvalidArgument(
            f"max_file_bytes must be between 1024 and {MAX_FILE_CEILING}.", param="max_file_bytes"
        )
    for name in ("log_retention_days", "workspace_retention_days", "file_retention_days"):
        if not 1 <= getattr(config, name) <= 3650:
            raise InvalidArgument(f"{name} must be between 1 and 3650.", param=name)
    if not 0 <= config.pool_size <= 16:
        raise InvalidArgument("pool_size must be between 0 and 16.", param="pool_size")
    if not 0 <= config.claude_max_retries <= 10:
        raise InvalidArgument(
            "claude_max_retries must be between 0 and 10.", param="claude_max_retries"
        )
    check_capacity(config)
    for origin in config.cors_origins:
        if origin != "*" and not valid_origin(origin):
            raise InvalidArgument(
                f"CORS origin {origin!r} must be '*' or an origin such as "
                "https://app.example or http://localhost:3000 (scheme, host, optional port).",
                param="cors_origins",
            )
    check_tool_names(config.default_allowed_tools, "default_allowed_tools")
    for alias, target in config.model_aliases.items():
        if not ALIAS_NAME.fullmatch(alias):
            raise InvalidArgument(
                f"Alias name {alias!r} may use letters, digits and . _ : / @ + - "
                "(at most 128 characters).",
                param="model_aliases",
            )
        if target not in known_models:
            raise InvalidArgument(
                f"Alias '{alias}' must point at a known model (got {target!r}).",
                param="model_aliases",
            )


CAPACITY_BOUNDS = {
    "max_live_processes": (1, 10_000),
    "max_running_turns": (1, 10_000),
    "max_queued_turns": (0, 100_000),
    "max_queue_wait_seconds": (1, 3600),
    "max_concurrent_starts": (1, 256),
}


def check_capacity(config: LiveConfig) -> None:
    for name, (low, high) in CAPACITY_BOUNDS.items():
        if not low <= getattr(config, name) <= high:
            raise InvalidArgument(f"{name} must be between {low} and {high}.", param=name)
    if config.max_running_turns > config.max_live_processes:
        # Every running turn needs a live process.
        raise InvalidArgument(
            "max_running_turns must not exceed max_live_processes.", param="max_running_turns"
        )


def valid_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    return (
        parts.scheme in ("http", "https")
        and ORIGIN_HOST.fullmatch(host) is not None
        and not (parts.path or parts.query or parts.fragment or "@" in parts.netloc)
    )


def check_tool_names(names: Iterable[str], param: str) -> None:
    """Tool policies name Claude Code tools our permission callback knows; a
    typo would leave every key under the policy with no usable tool."""
    unknown = [n for n in names if n not in ALLOWED_BY_DEFAULT]
    if unknown:
        raise InvalidArgument(
            f"Unknown tool name(s) {', '.join(map(repr, unknown))}; "
            f"known tools: {', '.join(sorted(ALLOWED_BY_DEFAULT))}.",
            param=param,
        )


@dataclass(frozen=True)
class Snapshot:
    config: LiveConfig
    version: int
    updated_by: str
    updated_at: int


class LiveConfigStore:
    def __init__(self, sessions: sessionmaker[Session], base: LiveConfig) -> None:
        self._sessions = sessions
        self._base = base
        self._current = Snapshot(base, 0, "environment", 0)

    @property
    def current(self) -> Snapshot:
        return self._current

    def refresh(self) -> bool:
        """Loads the newest version; True when it changed."""
        with self._sessions() as db:
            row = db.scalars(
                select(ConfigVersion).order_by(ConfigVersion.version.desc()).limit(1)
            ).first()
            if row is None or row.version == self._current.version:
                return False
            self._current = self._snapshot(row)
            return True

    def update(
        self,
        new: LiveConfig,
        paths: list[str],
        actor: str,
        expected_version: int,
        known_models: set[str],
    ) -> Snapshot:
        self.refresh()
        current = self._current
        if expected_version and expected_version != current.version:
            raise Busy(
                f"The configuration changed since version {expected_version}; reload and retry.",
                reason="config_version_conflict",
            )
        unknown = [p for p in paths if p not in FIELDS]
        if unknown or not paths:
            raise InvalidArgument(
                "update_mask must name fields of LiveConfig "
                f"(bad: {', '.join(unknown) or 'none'}).",
                param="update_mask",
            )
        merged = replace(current.config, **{path: getattr(new, path) for path in paths})
        validate(merged, known_models)
        changed = [f for f in FIELDS if getattr(merged, f) != getattr(current.config, f)]
        row = ConfigVersion(
            version=current.version + 1,
            config_json=codec.live_config_to_json(merged),
            changed_fields=json.dumps(changed),
            updated_by=actor,
            updated_at=datetime.now(UTC),
        )
        try:
            with self._sessions.begin() as db:
                db.add(row)
        except IntegrityError:
            raise Busy(
                "Another change was saved at the same time; retry.",
                reason="config_version_conflict",
            ) from None
        self._current = self._snapshot(row)
        return self._current

    def history(self, limit: int, offset: int) -> list[ConfigChange]:
        with self._sessions() as db:
            rows = db.scalars(
                select(ConfigVersion)
                .order_by(ConfigVersion.version.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return [
                ConfigChange(
                    r.version,
                    r.updated_by,
                    _unix(r.updated_at),
                    tuple(json.loads(r.changed_fields)),
                    self._parse(r.config_json),
                )
                for r in rows
            ]

    def count(self) -> int:
        with self._sessions() as db:
            return int(db.scalar(select(func.count()).select_from(ConfigVersion)) or 0)

    def _snapshot(self, row: ConfigVersion) -> Snapshot:
        return Snapshot(
            self._parse(row.config_json), row.version, row.updated_by, _unix(row.updated_at)
        )

    def _parse(self, text: str) -> LiveConfig:
        return codec.live_config_from_json(text, self._base)


def _unix(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())
