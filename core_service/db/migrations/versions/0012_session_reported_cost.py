"""sessions.reported_cost_usd: Claude Code's running cost total per session

Claude Code reports `total_cost_usd` as a running total that a resume or a
fork carries on; a turn's own cost is the rise from the session's last total.
Existing sessions start at 0 (their next resumed turn may count earlier cost
once, as before this column).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(
            sa.Column("reported_cost_usd", sa.Float(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+ has it): batch mode would copy and drop
    # the sessions table, which the turns' foreign keys refuse.
    op.drop_column("sessions", "reported_cost_usd")
