"""Alembic migrations on SQLite and PostgreSQL: an empty database to head,
and a database at the previous version keeping its data."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from core_service.db.engine import make_engine
from core_service.db.migrations import alembic_config, upgrade
from core_service.db.models import Base


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def _version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar())
    finally:
        engine.dispose()


def test_empty_database_upgrades_to_head(database_url: str) -> None:
    upgrade(database_url)
    assert _version(database_url) == _head(database_url)
    engine = make_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        assert set(Base.metadata.tables) <= tables
        # Every model column exists in the migrated schema.
        for name, table in Base.metadata.tables.items():
            columns = {c["name"] for c in inspector.get_columns(name)}
            assert {c.name for c in table.columns} <= columns, name
        indexes = {i["name"] for i in inspector.get_indexes("request_logs")}
        assert {
            "ix_request_logs_time",
            "ix_request_logs_key_time",
            "ix_request_logs_model_time",
        } <= indexes
    finally:
        engine.dispose()
    # Upgrading again is a no-op.
    upgrade(database_url)
    assert _version(database_url) == _head(database_url)


def test_previous_version_keeps_its_data(database_url: str) -> None:
    upgrade(database_url, "0001")
    assert _version(database_url) == "0001"
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, prefix, secret_hash, created_at) "
                    "VALUES ('key_old', 'before 0002', 'sk-cc-Ab', 'h' || 'ash', "
                    "'2025-01-02 03:04:05+00:00')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO sessions (id, key_id, workspace, home, model, created_at, "
                    "last_active_at, turn_count, input_tokens, output_tokens, cost_usd, deleted) "
                    "VALUES ('sess_old', 'key_old', 'ws', 'home', 'claude-sonnet-4-5', "
                    "'2025-01-02 03:04:05+00:00', '2025-01-02 03:04:05+00:00', 3, 10, 20, "
                    "0.5, false)"
                )
            )
    finally:
        engine.dispose()

    upgrade(database_url)
    assert _version(database_url) == _head(database_url)

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            key = conn.execute(
                sa.text(
                    "SELECT name, prefix, secret_hash, rpm, tpm, max_concurrent, budget_usd, "
                    "budget_period, allowed_models, allowed_tools, active_turns, spent_usd, "
                    "spent_total_usd, period_start, updated_at FROM api_keys WHERE id = 'key_old'"
                )
            ).one()
            assert tuple(key[:3]) == ("before 0002", "sk-cc-Ab", "hash")
            # New columns got their server defaults.
            assert tuple(key[3:]) == (0, 0, 0, 0.0, "month", "[]", "[]", 0, 0.0, 0.0, None, None)
            session = conn.execute(
                sa.text(
                    "SELECT key_id, model, turn_count, input_tokens, output_tokens, cost_usd "
                    "FROM sessions WHERE id = 'sess_old'"
                )
            ).one()
            assert tuple(session) == ("key_old", "claude-sonnet-4-5", 3, 10, 20, 0.5)
            # The new tables work beside the old data.
            conn.execute(
                sa.text(
                    'INSERT INTO rate_windows (key_id, "window", requests, tokens) '
                    "VALUES ('key_old', 1, 2, 3)"
                )
            )
            assert conn.execute(sa.text("SELECT count(*) FROM request_logs")).scalar() == 0
    finally:
        engine.dispose()
