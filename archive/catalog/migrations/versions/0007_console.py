"""console: the indexes behind "who sent what" (reports, study search by source and day)

Revision ID: 0007_console
Revises: 0006_series_sampling
Create Date: 2026-12-01

The reports and the study filters by source and day of receipt read the jobs (each holds its
source, the moment it was received and the instance it became: archive/catalog/reports.py).
Without these, a study's jobs are found by scanning every job, and a source's week by
scanning all of its jobs since the first.
"""

from __future__ import annotations

from alembic import op

revision = "0007_console"
down_revision = "0006_series_sampling"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_instance_id", "jobs", ["instance_id"])
    op.create_index("ix_jobs_source_received", "jobs", ["source_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_source_received", table_name="jobs")
    op.drop_index("ix_jobs_instance_id", table_name="jobs")
