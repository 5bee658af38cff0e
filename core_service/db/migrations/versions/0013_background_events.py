"""background_turns and background_events: background mode's turns and event journal

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "background_turns",
        sa.Column("turn_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("turn_json", sa.Text(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("turn_id"),
    )
    with op.batch_alter_table("background_turns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_background_turns_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_background_turns_ended_at"), ["ended_at"], unique=False
        )
    op.create_table(
        "background_events",
        sa.Column("turn_id", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("turn_id", "idx"),
    )


def downgrade() -> None:
    op.drop_table("background_events")
    with op.batch_alter_table("background_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_background_turns_ended_at"))
        batch_op.drop_index(batch_op.f("ix_background_turns_owner"))
    op.drop_table("background_turns")
