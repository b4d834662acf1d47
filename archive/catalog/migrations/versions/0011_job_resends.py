"""job_resends: how many times the sweeper re-sent a job's message since it was last sent

Revision ID: 0011_job_resends
Revises: 0010_console_sessions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_job_resends"
down_revision = "0010_console_sessions"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch rebuild of `jobs` rewrites its
# inline source_id reference as a table constraint, after which 0004's downgrade can no
# longer drop that column.
def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("resends", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )


def downgrade() -> None:
    op.drop_column("jobs", "resends")
