"""core instances and turn owners, for crash recovery

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
# The integrator moves this onto 0004 when both branches are merged.
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_instances",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("endpoint", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_turns_owner", ["owner"], unique=False)
    with op.batch_alter_table("turn_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=40), nullable=True))
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.create_index("ix_request_logs_turn", ["turn_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_request_logs_turn")
    with op.batch_alter_table("turn_leases", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_index("ix_turns_owner")
        batch_op.drop_column("request_id")
        batch_op.drop_column("endpoint")
        batch_op.drop_column("owner")
    op.drop_table("core_instances")
