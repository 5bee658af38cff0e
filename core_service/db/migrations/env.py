"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from alembic import context

from core_service.db.engine import make_engine
from core_service.db.models import Base

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
