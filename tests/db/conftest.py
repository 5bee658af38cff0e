"""Fixtures for database-facing tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from tests.pg import database_url, pg_server

__all__ = ["database_url", "migrated_url", "pg_server", "sessions"]


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """`database_url`, upgraded to the newest migration."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def sessions(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
