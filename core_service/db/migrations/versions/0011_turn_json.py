"""turns.turn_json: the core's own turn as JSON instead of a serialized
claudecode.v1.Turn; config_versions.config_json in the domain's shape

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Every stored turn is read with the generated proto code and written as the
domain JSON by the core's converter (core_service/servicers/convert.py), the
code that reads it back. Downgrade writes the proto bytes again. (A later
migration that changes the JSON's shape must first freeze a copy of today's
converter here: this one would otherwise write the newer shape into rows the
later one expects in the old.)

Live-config rows were proto JSON: int64 values as strings and zero values
left out, which the old reader took as "zero" for the fields it always read
and as "the environment's value" for the rest. They are rewritten so every
value the old reader used is explicit; fields still missing keep the
environment's value, as before. The new shape is also valid proto JSON with
the same meaning, so downgrade leaves those rows as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from claudecode.v1 import agent_pb2

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Rows converted per round trip, so a large turns table is never in memory at once.
BATCH = 200

# What the old live-config reader took from a stored row even when the row
# left it out (so: zero, or empty).
CONFIG_ALWAYS_READ = {
    "model_aliases": {},
    "default_allowed_tools": [],
    "cors_origins": [],
    "log_level": "",
    "max_body_bytes": 0,
    "log_retention_days": 0,
    "workspace_retention_days": 0,
    "pool_size": 0,
    "claude_max_retries": 0,
    "log_bodies": False,
}
CONFIG_INT64 = ("max_body_bytes", "max_file_bytes")

turns = sa.table(
    "turns",
    sa.column("id", sa.String),
    sa.column("snapshot", sa.LargeBinary),
    sa.column("turn_json", sa.Text),
)
configs = sa.table(
    "config_versions", sa.column("version", sa.Integer), sa.column("config_json", sa.Text)
)


def _to_json(snapshot: bytes) -> str:
    from core_service.domain import codec
    from core_service.servicers import convert

    turn = agent_pb2.Turn()
    turn.ParseFromString(snapshot)
    return codec.turn_to_json(convert.turn_from_pb(turn))


def _to_snapshot(text: str) -> bytes:
    from core_service.domain import codec
    from core_service.servicers import convert

    return convert.turn_to_pb(codec.turn_from_json(text)).SerializeToString()


def _convert(
    source: sa.ColumnClause[object], target: str, change: Callable[[object], object]
) -> None:
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(turns.c.id, source).where(turns.c.id > last).order_by(turns.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        for turn_id, value in rows:
            conn.execute(
                turns.update().where(turns.c.id == turn_id).values({target: change(value)})
            )
        last = rows[-1][0]


def config_row(text: str) -> str:
    """An old live-config row in the domain's shape (see the module docstring)."""
    stored = json.loads(text)
    for name in CONFIG_INT64:
        if name in stored:
            stored[name] = int(stored[name])
    return json.dumps({**CONFIG_ALWAYS_READ, **stored}, sort_keys=True)


def upgrade() -> None:
    with op.batch_alter_table("turns") as batch_op:
        batch_op.add_column(sa.Column("turn_json", sa.Text(), nullable=True))
    _convert(turns.c.snapshot, "turn_json", lambda v: _to_json(v))  # type: ignore[arg-type]
    with op.batch_alter_table("turns") as batch_op:
        batch_op.alter_column("turn_json", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("snapshot")
    conn = op.get_bind()
    for version, text in conn.execute(sa.select(configs.c.version, configs.c.config_json)).all():
        conn.execute(
            configs.update()
            .where(configs.c.version == version)
            .values(config_json=config_row(text))
        )


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch_op:
        batch_op.add_column(sa.Column("snapshot", sa.LargeBinary(), nullable=True))
    _convert(turns.c.turn_json, "snapshot", lambda v: _to_snapshot(str(v)))
    with op.batch_alter_table("turns") as batch_op:
        batch_op.alter_column("snapshot", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("turn_json")
