"""Migration 0011 on SQLite and PostgreSQL: turns stored as serialized
claudecode.v1.Turn become domain JSON and read back as the very same turns;
live-config versions read back as the old reader read them; downgrade
restores the proto bytes."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from google.protobuf import json_format

from claudecode.v1 import admin_pb2, agent_pb2
from core_service import live_config
from core_service.config import CoreConfig
from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import alembic_config, upgrade
from core_service.keys import KeyStore
from core_service.servicers import convert
from core_service.store import SessionStore
from tests import old_release


def _old_database(url: str) -> tuple[str, list[agent_pb2.Turn]]:
    upgrade(url, "0010")
    engine = make_engine(url)
    try:
        key = KeyStore(make_sessionmaker(engine)).create("old")[0].id
    finally:
        engine.dispose()
    return key, old_release.write(url, key, "sess_old")


def _old_reader(text: str, base: admin_pb2.LiveConfig) -> admin_pb2.LiveConfig:
    """How the release before 0011 read a stored live-config version."""
    config = admin_pb2.LiveConfig()
    config.CopyFrom(base)
    stored = json_format.Parse(text, admin_pb2.LiveConfig(), ignore_unknown_fields=True)
    config.MergeFrom(stored)
    for name in ("default_allowed_tools", "cors_origins"):
        del getattr(config, name)[:]
        getattr(config, name).extend(getattr(stored, name))
    config.model_aliases.clear()
    config.model_aliases.update(stored.model_aliases)
    for name in (
        "log_level",
        "max_body_bytes",
        "log_retention_days",
        "workspace_retention_days",
        "pool_size",
        "claude_max_retries",
        "log_bodies",
    ):
        setattr(config, name, getattr(stored, name))
    return config


def test_stored_turns_read_back_as_they_were_written(database_url: str) -> None:
    key, written = _old_database(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        store = SessionStore(make_sessionmaker(engine))
        for turn in written:
            row = store.get_turn(key, turn.id, stored_only=False)
            assert row is not None
            assert convert.turn_to_pb(row.turn) == turn, turn.id
        # The deleted one is still gone for its owner; the session lists them all.
        assert store.get_turn(key, written[-1].id) is None
        assert [convert.turn_to_pb(t) for t in store.turns_of("sess_old")] == written
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("turns")}
        assert "snapshot" not in columns and "turn_json" in columns
    finally:
        engine.dispose()


def test_live_config_versions_read_back_as_the_old_reader_read_them(database_url: str) -> None:
    _old_database(database_url)
    upgrade(database_url)
    base = live_config.defaults(CoreConfig(data_dir=Path("/tmp/x"), database_url="sqlite://"))
    engine = make_engine(database_url)
    try:
        store = live_config.LiveConfigStore(make_sessionmaker(engine), base)
        history = {c.version: c.config for c in store.history(10, 0)}
        for version, text in old_release.config_rows():
            expected = _old_reader(text, convert.live_config_to_pb(base))
            assert convert.live_config_to_pb(history[version]) == expected, version
    finally:
        engine.dispose()


def test_downgrade_writes_the_proto_bytes_again(database_url: str) -> None:
    _, written = _old_database(database_url)
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "0010")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows: dict[str, bytes] = {
                r[0]: r[1] for r in conn.execute(sa.text("SELECT id, snapshot FROM turns"))
            }
    finally:
        engine.dispose()
    for turn in written:
        back = agent_pb2.Turn()
        back.ParseFromString(bytes(rows[turn.id]))
        assert back == turn, turn.id
