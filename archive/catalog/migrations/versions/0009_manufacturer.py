"""manufacturer: the equipment's manufacturer and model name on each series

Revision ID: 0009_manufacturer
Revises: 0008_datasets
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_manufacturer"
down_revision = "0008_datasets"
branch_labels = None
depends_on = None

COLUMNS = ("manufacturer", "model")


def upgrade() -> None:
    # Nullable, no backfill: the archived files of older series were written without the
    # catalog reading these attributes, and reading them back is a job of its own. Dataset
    # queries and cards show NULL as "unknown".
    for name in COLUMNS:
        op.add_column("series", sa.Column(name, sa.String(64), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        if op.get_bind().dialect.name == "sqlite":
            # A batch copy of `series` would drop the table that instances reference.
            op.execute(sa.text(f"ALTER TABLE series DROP COLUMN {name}"))
        else:
            op.drop_column("series", name)
