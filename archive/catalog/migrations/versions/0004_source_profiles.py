"""source profiles: jobs know their source; one ACTIVE version per profile name; APPROVED

Revision ID: 0004_source_profiles
Revises: 0003_users
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_source_profiles"
down_revision = "0003_users"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ONE_ACTIVE = "uq_profile_versions_one_active"
FK_SOURCE = "fk_jobs_source_id_sources"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # A batch copy of `jobs` would drop the table that quarantine rows reference, which
        # SQLite refuses with foreign keys on; its ALTER TABLE can add a referencing column.
        op.execute(
            sa.text(
                "ALTER TABLE jobs ADD COLUMN source_id INTEGER "
                "REFERENCES sources (id) ON DELETE SET NULL"
            )
        )
    else:
        op.add_column("jobs", sa.Column("source_id", BIG_ID, nullable=True))
        op.create_foreign_key(
            FK_SOURCE, "jobs", "sources", ["source_id"], ["id"], ondelete="SET NULL"
        )
    # Catalogs made before this revision may hold several ACTIVE rows for one name (the bug
    # this revision closes): the most recently activated stays, the others are retired.
    op.execute(
        sa.text(
            "UPDATE profile_versions SET status = 'RETIRED', retired_at = activated_at "
            "WHERE status = 'ACTIVE' AND EXISTS ("
            " SELECT 1 FROM profile_versions AS newer"
            " WHERE newer.name = profile_versions.name AND newer.status = 'ACTIVE'"
            " AND (newer.activated_at > profile_versions.activated_at"
            "  OR (newer.activated_at = profile_versions.activated_at"
            "      AND newer.id > profile_versions.id)))"
        )
    )
    # A proposal a second steward already approved was shown as PROPOSED; it is APPROVED.
    op.execute(
        sa.text(
            "UPDATE profile_versions SET status = 'APPROVED' "
            "WHERE status = 'PROPOSED' AND EXISTS ("
            " SELECT 1 FROM profile_approvals AS a"
            " WHERE a.profile_version_id = profile_versions.id"
            " AND a.approved_by <> profile_versions.proposed_by)"
        )
    )
    op.create_index(
        ONE_ACTIVE,
        "profile_versions",
        ["name"],
        unique=True,
        postgresql_where=sa.text("status = 'ACTIVE'"),
        sqlite_where=sa.text("status = 'ACTIVE'"),
    )


def downgrade() -> None:
    op.drop_index(ONE_ACTIVE, table_name="profile_versions")
    op.execute(sa.text("UPDATE profile_versions SET status = 'PROPOSED' WHERE status = 'APPROVED'"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(sa.text("ALTER TABLE jobs DROP COLUMN source_id"))
    else:
        op.drop_constraint(FK_SOURCE, "jobs", type_="foreignkey")
        op.drop_column("jobs", "source_id")
