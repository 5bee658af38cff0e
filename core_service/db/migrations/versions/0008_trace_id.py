"""request logs: trace id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
# The integrator links this after the newest revision of main.
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before tracing have no trace id.
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trace_id", sa.String(length=32), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("request_logs", schema=None) as batch_op:
        batch_op.drop_column("trace_id")
