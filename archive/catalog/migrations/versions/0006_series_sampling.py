"""series sampling: jobs held per series, and where each sampled series' decision stands

Revision ID: 0006_series_sampling
Revises: 0005_source_tls
Create Date: 2026-12-01

The new job status HELD needs no change: job_status is a non-native enum without a CHECK
constraint (a String(16) column).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_series_sampling"
down_revision = "0005_source_tls"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy): `jobs` is referenced by quarantine rows.
    op.add_column("jobs", sa.Column("series_key", sa.String(length=64), nullable=True))
    op.add_column("jobs", sa.Column("instance_number", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("pixel_mode", sa.String(length=16), nullable=True))
    op.create_index("ix_jobs_series_key_status", "jobs", ["series_key", "status"])
    op.create_table(
        "series_sampling",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("series_key", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "HOLDING",
                "SAMPLING",
                "CLEAN",
                "TEXT",
                name="sampling_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("last_held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("series_key", name="uq_series_sampling_series_key"),
    )
    op.create_index("ix_series_sampling_study_uid", "series_sampling", ["study_uid"])
    op.create_index(
        "ix_series_sampling_state_held", "series_sampling", ["state", "last_held_at"]
    )


def downgrade() -> None:
    # Older code knows no HELD job: held slices go back to RECEIVED and are archived as
    # before sampling (a primary slice not examined), never forgotten.
    op.execute(sa.text("UPDATE jobs SET status = 'RECEIVED' WHERE status = 'HELD'"))
    op.drop_index("ix_series_sampling_state_held", table_name="series_sampling")
    op.drop_index("ix_series_sampling_study_uid", table_name="series_sampling")
    op.drop_table("series_sampling")
    op.drop_index("ix_jobs_series_key_status", table_name="jobs")
    for column in ("pixel_mode", "instance_number", "series_key"):
        if op.get_bind().dialect.name == "sqlite":
            # No batch copy of `jobs` (quarantine rows reference it); SQLite drops in place.
            op.execute(sa.text(f"ALTER TABLE jobs DROP COLUMN {column}"))
        else:
            op.drop_column("jobs", column)
