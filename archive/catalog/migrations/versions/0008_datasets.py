"""datasets: frozen cohorts, their instances by split, and sealed certification patients

Revision ID: 0008_datasets
Revises: 0007_console
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_datasets"
down_revision = "0007_console"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("parent_id", BIG_ID, sa.ForeignKey("datasets.id"), nullable=True),
        sa.Column("query_json", sa.Text(), nullable=False),
        sa.Column("proportions_json", sa.Text(), nullable=False),
        sa.Column("patients", sa.Integer(), nullable=False),
        sa.Column("studies", sa.Integer(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sealed_by", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "dataset_items",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", BIG_ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("instance_id", BIG_ID, sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("patient_id", BIG_ID, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("split", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_dataset_items_dataset", "dataset_items", ["dataset_id", "split"])
    op.create_table(
        "sealed_patients",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("patient_id", BIG_ID, sa.ForeignKey("patients.id"), nullable=False, unique=True),
        sa.Column("dataset_id", BIG_ID, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sealed_patients")
    op.drop_index("ix_dataset_items_dataset", table_name="dataset_items")
    op.drop_table("dataset_items")
    op.drop_table("datasets")
