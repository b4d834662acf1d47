"""governance: sources, api tokens, profile versions and approvals, audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64


def _id() -> sa.Column:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "sources",
        _id(),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("profile_name", sa.String(length=64), nullable=True),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ae_title"),
    )
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum("auditor", "steward", "admin", name="api_role", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    op.create_table(
        "profile_versions",
        _id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PROPOSED",
                "ACTIVE",
                "RETIRED",
                name="profile_version_status",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(length=64), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_profile_versions_name_version"),
    )
    with op.batch_alter_table("profile_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_versions_name"), ["name"], unique=False)

    op.create_table(
        "profile_approvals",
        _id(),
        sa.Column("profile_version_id", BIG_ID, nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["profile_version_id"], ["profile_versions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("profile_version_id", "approved_by", name="uq_profile_approvals_once"),
    )
    with op.batch_alter_table("profile_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profile_approvals_profile_version_id"),
            ["profile_version_id"],
            unique=False,
        )

    op.create_table(
        "audit_events",
        _id(),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=8), nullable=False),
        sa.Column("event_type", sa.String(length=8), nullable=True),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("object_type", sa.String(length=32), nullable=True),
        sa.Column("object_id", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_occurred_at"), ["occurred_at"])
        batch_op.create_index(batch_op.f("ix_audit_events_event_id"), ["event_id"])
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"])
        batch_op.create_index(batch_op.f("ix_audit_events_object_id"), ["object_id"])

    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The one row every appender locks; the chain starts from an all-zero hash.
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_object_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_events_event_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_occurred_at"))
    op.drop_table("audit_events")
    with op.batch_alter_table("profile_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_approvals_profile_version_id"))
    op.drop_table("profile_approvals")
    with op.batch_alter_table("profile_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_versions_name"))
    op.drop_table("profile_versions")
    op.drop_table("api_tokens")
    op.drop_table("sources")
