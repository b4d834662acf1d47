"""nodes: each job names the ingest node holding its original; nodes report a heartbeat

Revision ID: 0012_nodes
Revises: 0011_job_resends
Create Date: 2026-12-01
"""

from __future__ import annotations

import socket

import sqlalchemy as sa
from alembic import context, op

revision = "0012_nodes"
down_revision = "0011_job_resends"
branch_labels = None
depends_on = None


def _upgrading_node() -> str:
    # Before nodes there was one machine: its jobs (and their spool files) belong to the node
    # that runs this upgrade, named by `amana db upgrade`'s AMANA_NODE (host name by default).
    node = context.config.attributes.get("amana_node")
    return str(node) if node else socket.gethostname()


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode: on SQLite a batch rebuilds `jobs` and turns its
    # column-level foreign keys into table-level ones, which 0004's downgrade cannot drop.
    op.add_column("jobs", sa.Column("node", sa.String(length=64), nullable=True))
    op.create_index("ix_jobs_node_status_finished", "jobs", ["node", "status", "finished_at"])
    jobs = sa.table("jobs", sa.column("node", sa.String(64)))
    op.execute(jobs.update().where(jobs.c.node.is_(None)).values(node=_upgrading_node()))
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_every_s", sa.Float(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_index("ix_jobs_node_status_finished", table_name="jobs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(sa.text("ALTER TABLE jobs DROP COLUMN node"))
    else:
        op.drop_column("jobs", "node")
