"""Domain values as JSON for the database (pydantic validates what it reads
back: a stored row that does not fit the types fails loudly, not later)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from core_service.domain.live_config import FIELDS as CONFIG_FIELDS
from core_service.domain.live_config import LiveConfig
from core_service.domain.turn import Turn


@cache
def _adapter(kind: type[Any]) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def turn_to_json(turn: Turn) -> str:
    return _adapter(Turn).dump_json(turn).decode()


def turn_from_json(text: str | bytes) -> Turn:
    turn: Turn = _adapter(Turn).validate_json(text)
    return turn


def live_config_to_json(config: LiveConfig) -> str:
    return _adapter(LiveConfig).dump_json(config).decode()


def live_config_from_json(text: str | bytes, base: LiveConfig) -> LiveConfig:
    """A stored version over `base`: fields added after it was saved keep
    base's values."""
    stored = json.loads(text)
    values = {name: getattr(base, name) for name in CONFIG_FIELDS}
    values.update((name, stored[name]) for name in CONFIG_FIELDS if name in stored)
    config: LiveConfig = _adapter(LiveConfig).validate_python(values)
    return config
